<?php

declare(strict_types=1);

use Illuminate\Support\Facades\Facade;
use Illuminate\Support\ServiceProvider;

// The version is baked into the image: the build writes VERSION at the app root (the e2e build script, or
// the Dockerfile's APP_VERSION build argument). APP_VERSION in the environment is the fallback for `artisan
// serve` on a checkout.
$versionFile = dirname(__DIR__).'/VERSION';
$version = is_readable($versionFile) ? trim((string) file_get_contents($versionFile)) : '';

return [
    'name' => env('APP_NAME', 'threetier'),
    'version' => $version !== '' ? $version : env('APP_VERSION', '0.0.0-dev'),
    'env' => env('APP_ENV', 'production'),
    'debug' => (bool) env('APP_DEBUG', false),
    'url' => env('APP_URL', 'http://localhost'),
    'asset_url' => env('ASSET_URL'),
    'timezone' => 'UTC',
    'locale' => 'en',
    'fallback_locale' => 'en',
    'faker_locale' => 'en_US',
    // From the chart's Secret (app.key / app.existingSecret); `php artisan key:generate --show` makes one.
    'key' => env('APP_KEY'),
    'cipher' => 'AES-256-CBC',
    'maintenance' => [
        'driver' => 'file',
    ],
    'providers' => ServiceProvider::defaultProviders()->merge([
        App\Providers\AppServiceProvider::class,
        App\Providers\RouteServiceProvider::class,
    ])->toArray(),
    'aliases' => Facade::defaultAliases()->toArray(),
];
