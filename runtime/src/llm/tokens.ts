/**
 * Token estimates without a provider's tokenizer: a GPT-style pre-tokenization (words with
 * their leading space, digit runs of up to three, punctuation runs) where a piece longer than
 * six characters counts one token per four, and non-ASCII characters one each. Within ~15% of
 * cl100k on English prose and code; used to reserve budget and rate-limit tokens before a call
 * (with a margin, see LlmClient `promptMargin`). What is charged is always the provider's own
 * count from its response.
 */

const PIECES = / ?[A-Za-z]+| ?\d{1,3}| ?[^\sA-Za-z\d]+|\s+/g;
const NON_ASCII = /[^\x00-\x7f]/;

/** Chat formats spend a few tokens per message on roles and separators (OpenAI documents 3–4). */
const TOKENS_PER_MESSAGE = 4;
const TOKENS_PER_REPLY = 3;

/** A chat message as every provider takes it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/**
 * Estimated tokens of a text.
 *
 * @example
 * countTokens('Hello, world!') // 4: "Hello" "," " world" "!"
 */
export function countTokens(text: string): number {
  let tokens = 0;
  for (const piece of text.match(PIECES) ?? []) tokens += pieceTokens(piece);
  return tokens;
}

/** BPE vocabularies hold few non-ASCII merges: CJK, emoji and accented runs cost about a token per character. */
function pieceTokens(piece: string): number {
  if (!NON_ASCII.test(piece)) return piece.length <= 6 ? 1 : Math.ceil(piece.length / 4);
  let nonAscii = 0;
  for (const char of piece) if (char.charCodeAt(0) > 0x7f) nonAscii += 1;
  return nonAscii + Math.ceil((piece.length - nonAscii) / 4);
}

/** Splits a text into the pieces `countTokens` counts, each a plausible streaming chunk. */
export function tokenPieces(text: string): string[] {
  return text.match(PIECES) ?? [];
}

/** Estimated prompt tokens of a chat: each message's text plus its per-message overhead. */
export function countChatTokens(messages: readonly ChatMessage[]): number {
  let tokens = TOKENS_PER_REPLY;
  for (const message of messages) tokens += TOKENS_PER_MESSAGE + countTokens(message.content);
  return tokens;
}
