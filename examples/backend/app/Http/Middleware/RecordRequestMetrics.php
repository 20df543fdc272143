<?php

declare(strict_types=1);

namespace App\Http\Middleware;

use App\Support\Metrics\RequestMetrics;
use Closure;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Log;
use Symfony\Component\HttpFoundation\Response;

/**
 * Counts every request (method, route pattern, status) and its duration for /metrics, and puts nginx's
 * request id into the context of every log line written while the request runs.
 */
class RecordRequestMetrics
{
    public function __construct(private readonly RequestMetrics $metrics)
    {
    }

    public function handle(Request $request, Closure $next): Response
    {
        $start = hrtime(true);
        $requestId = (string) $request->header('X-Request-ID', '');
        if ($requestId !== '') {
            Log::withContext(['request_id' => $requestId]);
        }

        $response = $next($request);

        $route = $request->route();
        // The route's pattern, not the path: one series per route, whatever the client sends.
        $routeLabel = is_object($route) ? '/'.ltrim($route->uri(), '/') : 'unmatched';
        $this->metrics->record(
            $request->getMethod(),
            $routeLabel,
            $response->getStatusCode(),
            (hrtime(true) - $start) / 1e9,
        );

        return $response;
    }
}
