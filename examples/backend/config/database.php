<?php

declare(strict_types=1);

// PostgreSQL only: the chart sets DB_HOST, DB_PORT, DB_DATABASE, DB_SSLMODE (ConfigMap) and DB_USERNAME,
// DB_PASSWORD (Secret). A pooler in transaction mode (the Zalando operator's PgBouncer) is fine: Laravel
// uses no session state and, with emulated prepares off by default for pgsql, one statement per round trip.
return [
    'default' => env('DB_CONNECTION', 'pgsql'),
    'connections' => [
        'pgsql' => [
            'driver' => 'pgsql',
            'url' => env('DATABASE_URL'),
            'host' => env('DB_HOST', '127.0.0.1'),
            'port' => env('DB_PORT', '5432'),
            'database' => env('DB_DATABASE', 'app'),
            'username' => env('DB_USERNAME', 'app'),
            'password' => env('DB_PASSWORD', ''),
            'charset' => 'utf8',
            'prefix' => '',
            'prefix_indexes' => true,
            'search_path' => 'public',
            'sslmode' => env('DB_SSLMODE', 'prefer'),
        ],
    ],
    'migrations' => 'migrations',
];
