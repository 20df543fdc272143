<?php

/*
 * Creates the application (Laravel 10 style: the HTTP and console kernels and the exception handler are
 * bound here; Debian trixie ships php-laravel-framework 10.48).
 */

declare(strict_types=1);

// libpq's connect timeout: an unreachable database fails a request (and a /metrics scrape) in seconds,
// not after the kernel's TCP timeout. The environment can still override it.
if (getenv('PGCONNECT_TIMEOUT') === false) {
    putenv('PGCONNECT_TIMEOUT=3');
}

$app = new Illuminate\Foundation\Application(
    $_ENV['APP_BASE_PATH'] ?? dirname(__DIR__)
);

$app->singleton(Illuminate\Contracts\Http\Kernel::class, App\Http\Kernel::class);
$app->singleton(Illuminate\Contracts\Console\Kernel::class, App\Console\Kernel::class);
$app->singleton(Illuminate\Contracts\Debug\ExceptionHandler::class, App\Exceptions\Handler::class);

return $app;
