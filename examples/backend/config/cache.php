<?php

declare(strict_types=1);

// CACHE_STORE=file (the chart's default) lives in storage/, an emptyDir per pod.
return [
    'default' => env('CACHE_STORE', env('CACHE_DRIVER', 'file')),
    'stores' => [
        'file' => [
            'driver' => 'file',
            'path' => storage_path('framework/cache/data'),
            'lock_path' => storage_path('framework/cache/data'),
        ],
        'array' => [
            'driver' => 'array',
            'serialize' => false,
        ],
        'apc' => [
            'driver' => 'apc',
        ],
    ],
    'prefix' => env('CACHE_PREFIX', 'threetier_cache_'),
];
