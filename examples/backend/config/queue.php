<?php

declare(strict_types=1);

// QUEUE_CONNECTION=sync (the chart's default): the example dispatches no jobs.
return [
    'default' => env('QUEUE_CONNECTION', 'sync'),
    'connections' => [
        'sync' => [
            'driver' => 'sync',
        ],
    ],
    'failed' => [
        'driver' => 'null',
    ],
];
