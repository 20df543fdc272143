<?php

/*
 * Readiness probe of the php-fpm container (the backend chart mounts it from its ConfigMap <name>-probes):
 * one FastCGI request for PHP-FPM's ping.path, straight to its loopback listener. It exits 0 when a worker
 * answers with ping.response within the timeout, and 1 otherwise: every worker busy for that long, the pool
 * stuck, or PHP-FPM gone. PHP-FPM answers the ping itself, so no PHP script, Laravel or database is involved.
 * The liveness probe only connects to the port, which succeeds while the master process holds its socket.
 *
 * Usage: php fpm-ping.php HOST PORT PING_PATH PING_RESPONSE TIMEOUT_MS
 */

declare(strict_types=1);

[, $host, $port, $path, $expected, $timeoutMs] = $argv + [null, '127.0.0.1', '9000', '/fpm-ping', 'pong', '1000'];
$deadline = microtime(true) + ((int) $timeoutMs) / 1000;

function fail(string $why): never
{
    fwrite(STDERR, "php-fpm not ready: {$why}\n");
    exit(1);
}

/** A FastCGI record: version 1, type, request id 1, the content, no padding. */
function record(int $type, string $content): string
{
    return pack('CCnnCx', 1, $type, 1, strlen($content), 0) . $content;
}

/** A FastCGI name-value pair; every name and value sent here is shorter than 128 bytes. */
function pair(string $name, string $value): string
{
    return chr(strlen($name)) . chr(strlen($value)) . $name . $value;
}

/** Exactly $length bytes from the socket before the deadline. */
function read($socket, int $length, float $deadline): string
{
    $data = '';
    while (strlen($data) < $length) {
        $left = $deadline - microtime(true);
        if ($left <= 0) {
            fail('no answer to the FastCGI ping in time (every worker busy?)');
        }
        stream_set_timeout($socket, (int) $left, (int) (fmod($left, 1) * 1e6));
        $chunk = fread($socket, $length - strlen($data));
        if (stream_get_meta_data($socket)['timed_out']) {
            continue; // the deadline check above says so
        }
        if ($chunk === false || ($chunk === '' && feof($socket))) {
            fail('PHP-FPM closed the connection before answering');
        }
        $data .= $chunk;
    }
    return $data;
}

$socket = @stream_socket_client("tcp://{$host}:{$port}", $errno, $error, max(0.001, $deadline - microtime(true)));
if ($socket === false) {
    fail("no FastCGI listener on {$host}:{$port} ({$error})");
}
$params = pair('SCRIPT_NAME', $path) . pair('SCRIPT_FILENAME', $path) . pair('REQUEST_METHOD', 'GET');
fwrite($socket, record(1, pack('nCx5', 1, 0)) . record(4, $params) . record(4, '') . record(5, ''));

// Records until FCGI_END_REQUEST (3); the response is the concatenated FCGI_STDOUT (6) content.
$stdout = '';
do {
    $header = unpack('Cversion/Ctype/nid/nlength/Cpadding/Creserved', read($socket, 8, $deadline));
    $content = $header['length'] + $header['padding'] > 0
        ? substr(read($socket, $header['length'] + $header['padding'], $deadline), 0, $header['length'])
        : '';
    if ($header['type'] === 6) {
        $stdout .= $content;
    }
} while ($header['type'] !== 3);

[$headers, $body] = array_pad(explode("\r\n\r\n", $stdout, 2), 2, '');
if (preg_match('/^Status: (\d+)/mi', $headers, $status) && $status[1] !== '200') {
    fail("the ping answered with status {$status[1]}");
}
if (trim($body) !== $expected) {
    fail('the ping answered ' . json_encode(substr($body, 0, 80)) . ", not {$expected}");
}
exit(0);
