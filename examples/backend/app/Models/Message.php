<?php

declare(strict_types=1);

namespace App\Models;

use Illuminate\Database\Eloquent\Model;

/**
 * A message of the example board.
 *
 * @property int $id
 * @property string $author
 * @property string $body
 */
class Message extends Model
{
    public const MAX_AUTHOR = 64;

    public const MAX_BODY = 500;

    /** @var list<string> */
    protected $fillable = ['author', 'body'];

    /** @var list<string> */
    protected $visible = ['id', 'author', 'body', 'created_at'];
}
