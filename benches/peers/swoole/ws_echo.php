<?php
// Swoole's WebSocket echo for scripts/bench.sh cpu: each message pushed back with its opcode,
// as examples/ws_echo.rs.  usage: php ws_echo.php PORT base|process   (1 worker, 1 reactor thread)
$port = (int)($argv[1] ?? 9501);
$mode = ($argv[2] ?? 'base') === 'base' ? SWOOLE_BASE : SWOOLE_PROCESS;
$server = new Swoole\WebSocket\Server('127.0.0.1', $port, $mode);
$server->set(['worker_num' => 1, 'reactor_num' => 1, 'log_level' => SWOOLE_LOG_WARNING]);
$server->on('message', function ($server, $frame) {
    $server->push($frame->fd, $frame->data, $frame->opcode);
});
$server->start();
