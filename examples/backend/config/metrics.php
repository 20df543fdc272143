<?php

declare(strict_types=1);

return [
    // auto: APCu when the extension is enabled (PHP-FPM), else a locked file under storage/framework.
    'store' => env('METRICS_STORE', 'auto'),
    'prefix' => 'threetier_metrics:',
    // Upper bounds of the latency histogram, in seconds (up to the chart's 60 s fastcgi_read_timeout).
    'buckets' => [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
];
