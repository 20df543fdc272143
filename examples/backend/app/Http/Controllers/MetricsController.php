<?php

declare(strict_types=1);

namespace App\Http\Controllers;

use App\Models\Message;
use App\Support\Metrics\Exposition;
use App\Support\Metrics\RequestMetrics;
use Illuminate\Http\Response;
use Throwable;

/**
 * GET /metrics (the nginx sidecar's metrics port): Prometheus text exposition of the build, the request
 * counters shared by the PHP-FPM workers, and application state read from the database when it answers.
 */
class MetricsController
{
    public function __invoke(RequestMetrics $metrics): Response
    {
        $lines = [
            '# HELP threetier_build_info Build of the running backend (always 1).',
            '# TYPE threetier_build_info gauge',
            'threetier_build_info'.Exposition::labels([
                'version' => (string) config('app.version'),
                'php' => PHP_VERSION,
                'laravel' => app()->version(),
            ]).' 1',
            '# HELP threetier_metrics_store_info Where the request counters live: apcu (shared memory of PHP-FPM) or file.',
            '# TYPE threetier_metrics_store_info gauge',
            'threetier_metrics_store_info'.Exposition::labels(['store' => $metrics->store()->name()]).' 1',
        ];
        array_push($lines, ...$metrics->render());

        $start = hrtime(true);
        $messages = null;
        try {
            $messages = Message::query()->count();
        } catch (Throwable $e) {
            report($e);
        }
        $lines[] = '# HELP threetier_db_up Whether the database answered the last scrape (1) or not (0).';
        $lines[] = '# TYPE threetier_db_up gauge';
        $lines[] = 'threetier_db_up '.($messages === null ? 0 : 1);
        $lines[] = '# HELP threetier_db_query_duration_seconds Time the scrape spent on its database query.';
        $lines[] = '# TYPE threetier_db_query_duration_seconds gauge';
        $lines[] = 'threetier_db_query_duration_seconds '.sprintf('%.6F', (hrtime(true) - $start) / 1e9);
        if ($messages !== null) {
            $lines[] = '# HELP threetier_messages Messages stored in the database.';
            $lines[] = '# TYPE threetier_messages gauge';
            $lines[] = 'threetier_messages '.$messages;
        }

        return new Response(implode("\n", $lines)."\n", 200, ['Content-Type' => Exposition::CONTENT_TYPE]);
    }
}
