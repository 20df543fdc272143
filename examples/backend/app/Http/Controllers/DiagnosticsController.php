<?php

declare(strict_types=1);

namespace App\Http\Controllers;

use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\DB;

/**
 * Endpoints the e2e tier drives: a database round trip, a slow request (graceful shutdown must let it
 * finish) and a CPU burner (to push the HPA). Each is bounded so it cannot be turned against the pod.
 */
class DiagnosticsController
{
    public const MAX_SLOW_SECONDS = 55;

    public const MAX_BURN_MS = 2000;

    /** GET /api/db: insert a probe row and count the rows, with the latency of the round trip. */
    public function database(): JsonResponse
    {
        $host = (string) gethostname();
        $start = hrtime(true);
        $id = DB::table('probes')->insertGetId(['host' => $host, 'created_at' => now()]);
        $rows = DB::table('probes')->count();
        $latencyMs = (hrtime(true) - $start) / 1e6;

        return new JsonResponse([
            'status' => 'ok',
            'inserted_id' => $id,
            'rows' => $rows,
            'latency_ms' => round($latencyMs, 3),
            'database' => DB::connection()->getDatabaseName(),
            'server_version' => (string) DB::selectOne('show server_version')->server_version,
            'host' => $host,
        ]);
    }

    /**
     * GET /api/slow?seconds=N: wait N seconds (0-55, default 5), then answer. A signal (PHP-FPM's graceful
     * stop sends SIGQUIT to its workers) cuts sleep() short, so the wait runs to a deadline instead: the
     * request really lasts N seconds, which is what a graceful-shutdown proof needs.
     */
    public function slow(Request $request): JsonResponse
    {
        $validated = $request->validate(['seconds' => ['sometimes', 'integer', 'min:0', 'max:'.self::MAX_SLOW_SECONDS]]);
        $seconds = (int) ($validated['seconds'] ?? 5);
        $started = now();
        $start = hrtime(true);
        $deadline = $start + $seconds * 1_000_000_000;
        while (($left = $deadline - hrtime(true)) > 0) {
            usleep((int) min(intdiv($left, 1000), 1_000_000));
        }

        return new JsonResponse([
            'status' => 'ok',
            'slept_seconds' => $seconds,
            'elapsed_seconds' => round((hrtime(true) - $start) / 1e9, 3),
            'started_at' => $started->toIso8601String(),
            'finished_at' => now()->toIso8601String(),
            'pid' => getmypid(),
            'host' => (string) gethostname(),
        ]);
    }

    /** GET /api/burn?ms=N: keep one CPU busy for N milliseconds (1-2000, default 200). */
    public function burn(Request $request): JsonResponse
    {
        $validated = $request->validate(['ms' => ['sometimes', 'integer', 'min:1', 'max:'.self::MAX_BURN_MS]]);
        $ms = (int) ($validated['ms'] ?? 200);
        $deadline = hrtime(true) + $ms * 1_000_000;
        $iterations = 0;
        $digest = '';
        while (hrtime(true) < $deadline) {
            for ($i = 0; $i < 1000; $i++) {
                $digest = hash('sha256', $digest.$iterations++);
            }
        }

        return new JsonResponse([
            'status' => 'ok',
            'burned_ms' => $ms,
            'iterations' => $iterations,
            'pid' => getmypid(),
            'host' => (string) gethostname(),
        ]);
    }
}
