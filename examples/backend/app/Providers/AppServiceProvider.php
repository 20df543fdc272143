<?php

declare(strict_types=1);

namespace App\Providers;

use App\Support\Metrics\ApcuStore;
use App\Support\Metrics\FileStore;
use App\Support\Metrics\MetricsStore;
use App\Support\Metrics\RequestMetrics;
use Illuminate\Support\ServiceProvider;

class AppServiceProvider extends ServiceProvider
{
    public function register(): void
    {
        // Request counters must add up across PHP-FPM workers: APCu's shared memory belongs to the FPM master,
        // so every worker of the pod increments the same counters. Without APCu (or in the CLI, where APCu is
        // per process), a flock()ed file under storage/ (an emptyDir per pod) does the same, slower.
        $this->app->singleton(MetricsStore::class, function (): MetricsStore {
            $driver = (string) config('metrics.store', 'auto');
            if ($driver === 'apcu' || ($driver === 'auto' && ApcuStore::available())) {
                return new ApcuStore((string) config('metrics.prefix'));
            }

            return new FileStore(storage_path('framework/metrics.json'));
        });
        $this->app->singleton(RequestMetrics::class, fn (): RequestMetrics => new RequestMetrics(
            $this->app->make(MetricsStore::class),
            array_map('floatval', (array) config('metrics.buckets')),
        ));
    }
}
