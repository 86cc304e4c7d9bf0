// A stand-in for the Telegram Bot API, for tests: Telegram lies outside this network, so the approver bot is tested
// against this server on loopback. It speaks the real wire format (https://core.telegram.org/bots/api): POST
// /bot<token>/<method> with a JSON or form body, answers { ok, result } or { ok: false, error_code, description },
// getUpdates long polling with offset confirmation, sendMessage with inline keyboards, callback_query updates,
// answerCallbackQuery and editMessageText (including "message is not modified"), and the 403 a bot gets when it
// writes to a user who never started it. Tests drive the people: a user sends /start, clicks a button, or an
// attacker pushes a forged update.
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface InlineButton {
  text: string;
  callback_data?: string;
}

export interface StandInMessage {
  message_id: number;
  chat: { id: number; type: "private"; first_name: string };
  from: { id: number; is_bot: true; first_name: string; username: string };
  date: number;
  text: string;
  reply_markup?: { inline_keyboard: InlineButton[][] };
  /** Every text the message had, oldest first (sendMessage, then each editMessageText). */
  history: string[];
}

export interface StandInCall {
  method: string;
  params: Record<string, unknown>;
  at: number;
}

export interface StandInBotApi {
  /** The API root to configure (approvals.telegram.apiRoot). */
  readonly apiRoot: string;
  readonly token: string;
  readonly botId: number;
  readonly calls: StandInCall[];
  readonly answers: Array<{ callback_query_id: string; text?: string; at: number }>;
  listen(): Promise<void>;
  close(): Promise<void>;
  /** A user opens the bot and presses Start: from now on the bot may write to them. */
  start(userId: number, firstName?: string): void;
  /** Messages the bot sent to a chat (a user's private chat has the user's id). */
  messagesIn(chatId: number): StandInMessage[];
  /** A user presses an inline button of a message; returns the callback query id. */
  click(userId: number, message: StandInMessage, buttonText: string): string;
  /** Delivers an arbitrary update body (a forged or replayed callback); update_id is added. */
  push(update: Record<string, unknown>): void;
  /** Resolves when the predicate holds (checked after every API call and every 10 ms), or rejects after timeoutMs. */
  waitFor<T>(predicate: () => T | undefined | false, timeoutMs?: number, what?: string): Promise<T>;
}

interface Waiter {
  resolve: (updates: unknown[]) => void;
  timer: NodeJS.Timeout;
}

async function readParams(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  const url = new URL(request.url ?? "/", "http://stand-in.invalid");
  const params: Record<string, unknown> = Object.fromEntries(url.searchParams);
  const type = request.headers["content-type"] ?? "";
  if (text === "") return params;
  if (type.includes("application/json")) return { ...params, ...(JSON.parse(text) as Record<string, unknown>) };
  if (type.includes("application/x-www-form-urlencoded")) {
    for (const [key, value] of new URLSearchParams(text)) {
      // Telegram reads JSON-serialized objects (reply_markup) from form fields too.
      params[key] = /^[[{]/.test(value) ? (JSON.parse(value) as unknown) : value;
    }
    return params;
  }
  throw new Error(`unsupported content-type ${type}`);
}

export function createStandInBotApi(options: { token?: string; botId?: number } = {}): StandInBotApi {
  const token = options.token ?? "4839574812:AAFstandinstandinstandinstandin0000";
  const botId = options.botId ?? Number(token.split(":")[0]);
  const bot = { id: botId, is_bot: true as const, first_name: "Perimeter approvals", username: "perimeter_approvals_bot" };
  const started = new Map<number, string>();
  const messages = new Map<number, StandInMessage[]>();
  const queue: Array<{ update_id: number; [key: string]: unknown }> = [];
  const callbackIds = new Set<string>();
  const calls: StandInCall[] = [];
  const answers: Array<{ callback_query_id: string; text?: string; at: number }> = [];
  const checks = new Set<() => void>();
  let nextUpdate = 1000;
  let nextCallback = 1;
  let nextMessage = 1;
  let waiter: Waiter | undefined;
  const sockets = new Set<Socket>();

  const changed = () => {
    for (const check of [...checks]) check();
  };
  const deliver = () => {
    if (waiter === undefined || queue.length === 0) return;
    const current = waiter;
    waiter = undefined;
    clearTimeout(current.timer);
    current.resolve([...queue]);
  };
  const enqueue = (update: Record<string, unknown>) => {
    queue.push({ ...update, update_id: nextUpdate++ });
    deliver();
  };
  const fail = (response: ServerResponse, code: number, description: string, extra: Record<string, unknown> = {}) => {
    response.writeHead(code, { "content-type": "application/json" });
    response.end(JSON.stringify({ ok: false, error_code: code, description, ...extra }));
  };
  const ok = (response: ServerResponse, result: unknown) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ ok: true, result }));
  };
  const find = (chatId: unknown, messageId: unknown) => (messages.get(Number(chatId)) ?? []).find((message) => message.message_id === Number(messageId));
  const publicMessage = (message: StandInMessage) => {
    const { history: _history, ...rest } = message;
    return rest;
  };

  const methods: Record<string, (params: Record<string, unknown>, response: ServerResponse, request: IncomingMessage) => void> = {
    getMe: (_params, response) => ok(response, { ...bot, can_join_groups: false, can_read_all_group_messages: false, supports_inline_queries: false }),
    deleteWebhook: (_params, response) => ok(response, true),
    getUpdates: (params, response, request) => {
      const offset = params.offset === undefined ? undefined : Number(params.offset);
      if (offset !== undefined) while (queue.length > 0 && (queue[0]?.update_id ?? 0) < offset) queue.shift();
      const timeout = Math.min(Number(params.timeout ?? 0), 50);
      if (queue.length > 0 || timeout <= 0) return ok(response, [...queue]);
      if (waiter !== undefined) {
        // Telegram answers a second concurrent poll with 409; a correct client never makes one.
        return fail(response, 409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running");
      }
      const current: Waiter = {
        resolve: (updates) => ok(response, updates),
        timer: setTimeout(() => {
          if (waiter === current) waiter = undefined;
          ok(response, []);
        }, timeout * 1000),
      };
      waiter = current;
      request.once("close", () => {
        if (waiter === current) {
          waiter = undefined;
          clearTimeout(current.timer);
        }
      });
    },
    sendMessage: (params, response) => {
      const chatId = Number(params.chat_id);
      const firstName = started.get(chatId);
      if (firstName === undefined) return fail(response, 403, "Forbidden: bot can't initiate conversation with a user");
      if (typeof params.text !== "string" || params.text === "") return fail(response, 400, "Bad Request: message text is empty");
      if (params.text.length > 4096) return fail(response, 400, "Bad Request: message is too long");
      const markup = params.reply_markup as { inline_keyboard?: InlineButton[][] } | undefined;
      for (const button of (markup?.inline_keyboard ?? []).flat()) {
        if (button.callback_data !== undefined && Buffer.byteLength(button.callback_data) > 64) return fail(response, 400, "Bad Request: BUTTON_DATA_INVALID");
      }
      const message: StandInMessage = {
        message_id: nextMessage++,
        chat: { id: chatId, type: "private", first_name: firstName },
        from: bot,
        date: Math.floor(Date.now() / 1000),
        text: params.text,
        ...(markup?.inline_keyboard === undefined ? {} : { reply_markup: { inline_keyboard: markup.inline_keyboard } }),
        history: [params.text],
      };
      messages.set(chatId, [...(messages.get(chatId) ?? []), message]);
      ok(response, publicMessage(message));
    },
    editMessageText: (params, response) => {
      const message = find(params.chat_id, params.message_id);
      if (message === undefined) return fail(response, 400, "Bad Request: message to edit not found");
      const markup = params.reply_markup as { inline_keyboard?: InlineButton[][] } | undefined;
      const keyboard = markup?.inline_keyboard;
      if (params.text === message.text && JSON.stringify(keyboard ?? null) === JSON.stringify(message.reply_markup?.inline_keyboard ?? null)) {
        return fail(response, 400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message");
      }
      message.text = String(params.text);
      message.history.push(message.text);
      // Without reply_markup an edit removes the inline keyboard, as Telegram does.
      if (keyboard === undefined || keyboard.length === 0) delete message.reply_markup;
      else message.reply_markup = { inline_keyboard: keyboard };
      ok(response, publicMessage(message));
    },
    answerCallbackQuery: (params, response) => {
      const id = String(params.callback_query_id);
      if (!callbackIds.delete(id)) return fail(response, 400, "Bad Request: query is too old and response timeout expired or query ID is invalid");
      answers.push({ callback_query_id: id, ...(typeof params.text === "string" ? { text: params.text } : {}), at: performance.now() });
      ok(response, true);
    },
  };

  const server = createServer((request, response) => {
    void (async () => {
      const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec((request.url ?? "/").split("?")[0] ?? "");
      if (match === null) return fail(response, 404, "Not Found");
      if (match[1] !== token) return fail(response, 401, "Unauthorized");
      const method = methods[match[2] ?? ""];
      if (method === undefined) return fail(response, 404, "Not Found");
      let params: Record<string, unknown>;
      try {
        params = await readParams(request);
      } catch (error) {
        return fail(response, 400, `Bad Request: ${(error as Error).message}`);
      }
      calls.push({ method: match[2] ?? "", params, at: performance.now() });
      method(params, response, request);
      changed();
    })();
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  let apiRoot = "";
  return {
    get apiRoot() {
      return apiRoot;
    },
    token,
    botId,
    calls,
    answers,
    listen: () =>
      new Promise((resolve) => {
        server.listen(0, "127.0.0.1", () => {
          apiRoot = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
          resolve();
        });
      }),
    close: () =>
      new Promise((resolve) => {
        if (waiter !== undefined) clearTimeout(waiter.timer);
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
    start(userId, firstName = `user${userId}`) {
      started.set(userId, firstName);
      enqueue({ message: { message_id: nextMessage++, from: { id: userId, is_bot: false, first_name: firstName }, chat: { id: userId, type: "private", first_name: firstName }, date: Math.floor(Date.now() / 1000), text: "/start", entities: [{ type: "bot_command", offset: 0, length: 6 }] } });
    },
    messagesIn: (chatId) => messages.get(chatId) ?? [],
    click(userId, message, buttonText) {
      const button = (message.reply_markup?.inline_keyboard ?? []).flat().find((candidate) => candidate.text === buttonText);
      if (button?.callback_data === undefined) throw new Error(`message ${message.message_id} has no button "${buttonText}" (it has: ${(message.reply_markup?.inline_keyboard ?? []).flat().map((entry) => entry.text).join(", ") || "none"})`);
      const id = String(nextCallback++) + "4711";
      callbackIds.add(id);
      enqueue({
        callback_query: {
          id,
          from: { id: userId, is_bot: false, first_name: started.get(userId) ?? `user${userId}` },
          message: publicMessage(message),
          chat_instance: `-${message.chat.id}77`,
          data: button.callback_data,
        },
      });
      return id;
    },
    push(update) {
      const query = (update as { callback_query?: { id?: string } }).callback_query;
      if (query?.id !== undefined) callbackIds.add(query.id);
      enqueue(update);
    },
    waitFor(predicate, timeoutMs = 5000, what = "the stand-in condition") {
      return new Promise((resolve, reject) => {
        const check = () => {
          const value = predicate();
          if (value !== undefined && value !== false) {
            cleanup();
            resolve(value);
          }
        };
        const interval = setInterval(check, 10);
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        const cleanup = () => {
          clearInterval(interval);
          clearTimeout(timer);
          checks.delete(check);
        };
        checks.add(check);
        check();
      });
    },
  };
}
