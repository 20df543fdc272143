<?php

declare(strict_types=1);

namespace App\Http\Controllers;

use App\Models\Message;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Log;

/** GET and POST /api/messages: the board the frontend shows. */
class MessageController
{
    public function index(Request $request): JsonResponse
    {
        $validated = $request->validate(['limit' => ['sometimes', 'integer', 'min:1', 'max:200']]);
        $messages = Message::query()
            ->orderByDesc('id')
            ->limit((int) ($validated['limit'] ?? 50))
            ->get();

        return new JsonResponse(['data' => $messages]);
    }

    public function store(Request $request): JsonResponse
    {
        $validated = $request->validate([
            'author' => ['required', 'string', 'max:'.Message::MAX_AUTHOR],
            'body' => ['required', 'string', 'max:'.Message::MAX_BODY],
        ]);
        $message = Message::query()->create($validated);
        Log::info('message created', ['message_id' => $message->id]);

        return new JsonResponse(['data' => $message], 201);
    }
}
