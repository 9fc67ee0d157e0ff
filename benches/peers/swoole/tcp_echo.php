<?php
// Swoole's TCP echo for scripts/bench.sh cpu: replies `Server: ` + data, as examples/tcp_echo.rs.
// usage: php tcp_echo.php PORT base|process   (1 worker, 1 reactor thread)
$port = (int)($argv[1] ?? 9501);
$mode = ($argv[2] ?? 'base') === 'base' ? SWOOLE_BASE : SWOOLE_PROCESS;
$server = new Swoole\Server('127.0.0.1', $port, $mode, SWOOLE_SOCK_TCP);
$server->set(['worker_num' => 1, 'reactor_num' => 1, 'log_level' => SWOOLE_LOG_WARNING]);
$server->on('receive', function ($server, $fd, $reactorId, $data) {
    $server->send($fd, 'Server: ' . $data);
});
$server->start();
