<?php

/*
 * Class loading for both ways this app is installed:
 *  - with Composer (the Dockerfile): vendor/autoload.php knows the framework and the app's namespaces;
 *  - on Debian (the e2e images): php-laravel-framework installs Illuminate and its dependencies under
 *    /usr/share/php with pkg-php-tools autoloaders, and the app's own PSR-4 namespaces are mapped here,
 *    exactly as composer.json declares them.
 */

declare(strict_types=1);

$basePath = dirname(__DIR__);

if (is_file($basePath.'/vendor/autoload.php')) {
    require $basePath.'/vendor/autoload.php';

    return;
}

$debianAutoloader = '/usr/share/php/Illuminate/autoload.php';
if (! is_file($debianAutoloader)) {
    fwrite(STDERR, "Neither vendor/autoload.php (composer install) nor Debian's php-laravel-framework is installed.\n");
    exit(1);
}
require $debianAutoloader;

spl_autoload_register(static function (string $class) use ($basePath): void {
    static $prefixes = [
        'App\\' => '/app/',
        'Database\\Seeders\\' => '/database/seeders/',
        'Database\\Factories\\' => '/database/factories/',
    ];
    foreach ($prefixes as $prefix => $dir) {
        if (str_starts_with($class, $prefix)) {
            $file = $basePath.$dir.str_replace('\\', '/', substr($class, strlen($prefix))).'.php';
            if (is_file($file)) {
                require $file;
            }

            return;
        }
    }
});
