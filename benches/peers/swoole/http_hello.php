<?php
// Swoole's HTTP hello for scripts/bench.sh cpu (issue 20's table): the same answer as
// examples/http_hello.rs (`Hello World`, content-type text/plain, keep-alive).
// usage: php http_hello.php PORT base|process   (1 worker, 1 reactor thread)
$port = (int)($argv[1] ?? 9501);
$mode = ($argv[2] ?? 'base') === 'base' ? SWOOLE_BASE : SWOOLE_PROCESS;
$server = new Swoole\Http\Server('127.0.0.1', $port, $mode);
$server->set(['worker_num' => 1, 'reactor_num' => 1, 'log_level' => SWOOLE_LOG_WARNING]);
$server->on('request', function ($req, $resp) {
    $resp->header('content-type', 'text/plain');
    $resp->end('Hello World');
});
$server->start();
