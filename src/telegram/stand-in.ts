// A stand-in for the Telegram Bot API, for tests: Telegram lies outside this network, so the approver bot is tested
// against this server on loopback. It speaks the real wire format (https://core.telegram.org/bots/api): POST
// /bot<token>/<method> with a JSON or form body, answers { ok, result } or { ok: false, error_code, description },
// getUpdates long polling with offset confirmation, sendMessage with inline keyboards, callback_query updates,
// answerCallbackQuery and editMessageText (including "message is not modified"), and the 403 a bot gets when it
// writes to a user who never started it. Tests drive the people: a user sends /start, clicks a button, or an
// attacker pushes a forged update.
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
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

type JsonUpdate = { update_id: number; [key: string]: unknown };

function answerError(response: ServerResponse, code: number, description: string): void {
  response.writeHead(code, { "content-type": "application/json" });
  response.end(JSON.stringify({ ok: false, error_code: code, description }));
}

function answerOk(response: ServerResponse, result: unknown): void {
  response.writeHead(200, { "content-type": "application/json" });
  response.end(JSON.stringify({ ok: true, result }));
}

/** A message as the Bot API shows it (without the stand-in's history). */
function publicMessage(message: StandInMessage): Omit<StandInMessage, "history"> {
  const { history: _history, ...rest } = message;
  return rest;
}

/** Why Telegram would refuse this sendMessage, or undefined. */
function sendMessageRefusal(params: Record<string, unknown>): string | undefined {
  if (typeof params.text !== "string" || params.text === "") return "Bad Request: message text is empty";
  if (params.text.length > 4096) return "Bad Request: message is too long";
  const markup = params.reply_markup as { inline_keyboard?: InlineButton[][] } | undefined;
  for (const button of (markup?.inline_keyboard ?? []).flat()) {
    if (button.callback_data !== undefined && Buffer.byteLength(button.callback_data) > 64) return "Bad Request: BUTTON_DATA_INVALID";
  }
  return undefined;
}

const API_METHODS = ["getMe", "deleteWebhook", "getUpdates", "sendMessage", "editMessageText", "answerCallbackQuery"] as const;
type ApiMethod = (typeof API_METHODS)[number];

export function createStandInBotApi(options: { token?: string; botId?: number } = {}): StandInBotApi {
  return new StandInBotApiServer(options);
}

/** The stand-in's state in private fields, one method per Bot API method; public methods are bound (tests pass them). */
class StandInBotApiServer implements StandInBotApi {
  readonly token: string;
  readonly botId: number;
  readonly calls: StandInCall[] = [];
  readonly answers: Array<{ callback_query_id: string; text?: string; at: number }> = [];
  readonly #bot: { id: number; is_bot: true; first_name: string; username: string };
  readonly #started = new Map<number, string>();
  readonly #messages = new Map<number, StandInMessage[]>();
  readonly #queue: JsonUpdate[] = [];
  readonly #callbackIds = new Set<string>();
  readonly #checks = new Set<() => void>();
  readonly #sockets = new Set<Socket>();
  readonly #server: Server;
  #nextUpdate = 1000;
  #nextCallback = 1;
  #nextMessage = 1;
  #waiter: Waiter | undefined;
  #apiRoot = "";

  constructor(options: { token?: string; botId?: number }) {
    this.token = options.token ?? "4839574812:AAFstandinstandinstandinstandin0000";
    this.botId = options.botId ?? Number(this.token.split(":")[0]);
    this.#bot = { id: this.botId, is_bot: true, first_name: "Perimeter approvals", username: "perimeter_approvals_bot" };
    this.#server = createServer((request, response) => void this.#serve(request, response));
    this.#server.on("connection", (socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    for (const name of ["listen", "close", "start", "messagesIn", "click", "push", "waitFor"] as const) this[name] = this[name].bind(this) as never;
  }

  /** The API root to configure (approvals.telegram.apiRoot). */
  get apiRoot(): string {
    return this.#apiRoot;
  }

  listen(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.listen(0, "127.0.0.1", () => {
        this.#apiRoot = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#waiter !== undefined) clearTimeout(this.#waiter.timer);
      for (const socket of this.#sockets) socket.destroy();
      this.#server.close(() => resolve());
    });
  }

  start(userId: number, firstName = `user${userId}`): void {
    this.#started.set(userId, firstName);
    const chat = { id: userId, type: "private", first_name: firstName };
    this.#enqueue({ message: { message_id: this.#nextMessage++, from: { id: userId, is_bot: false, first_name: firstName }, chat, date: Math.floor(Date.now() / 1000), text: "/start", entities: [{ type: "bot_command", offset: 0, length: 6 }] } });
  }

  messagesIn(chatId: number): StandInMessage[] {
    return this.#messages.get(chatId) ?? [];
  }

  click(userId: number, message: StandInMessage, buttonText: string): string {
    const buttons = (message.reply_markup?.inline_keyboard ?? []).flat();
    const button = buttons.find((candidate) => candidate.text === buttonText);
    if (button?.callback_data === undefined) throw new Error(`message ${message.message_id} has no button "${buttonText}" (it has: ${buttons.map((entry) => entry.text).join(", ") || "none"})`);
    const id = String(this.#nextCallback++) + "4711";
    this.#callbackIds.add(id);
    const from = { id: userId, is_bot: false, first_name: this.#started.get(userId) ?? `user${userId}` };
    this.#enqueue({ callback_query: { id, from, message: publicMessage(message), chat_instance: `-${message.chat.id}77`, data: button.callback_data } });
    return id;
  }

  push(update: Record<string, unknown>): void {
    const query = (update as { callback_query?: { id?: string } }).callback_query;
    if (query?.id !== undefined) this.#callbackIds.add(query.id);
    this.#enqueue(update);
  }

  waitFor<T>(predicate: () => T | undefined | false, timeoutMs = 5000, what = "the stand-in condition"): Promise<T> {
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
        this.#checks.delete(check);
      };
      this.#checks.add(check);
      check();
    });
  }

  async #serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec((request.url ?? "/").split("?")[0] ?? "");
    if (match === null) return answerError(response, 404, "Not Found");
    if (match[1] !== this.token) return answerError(response, 401, "Unauthorized");
    const method = match[2] ?? "";
    if (!(API_METHODS as readonly string[]).includes(method)) return answerError(response, 404, "Not Found");
    let params: Record<string, unknown>;
    try {
      params = await readParams(request);
    } catch (error) {
      return answerError(response, 400, `Bad Request: ${(error as Error).message}`);
    }
    this.calls.push({ method, params, at: performance.now() });
    this.#call(method as ApiMethod, params, response, request);
    for (const check of [...this.#checks]) check();
  }

  #call(method: ApiMethod, params: Record<string, unknown>, response: ServerResponse, request: IncomingMessage): void {
    switch (method) {
      case "getMe":
        return answerOk(response, { ...this.#bot, can_join_groups: false, can_read_all_group_messages: false, supports_inline_queries: false });
      case "deleteWebhook":
        return answerOk(response, true);
      case "getUpdates":
        return this.#getUpdates(params, response, request);
      case "sendMessage":
        return this.#sendMessage(params, response);
      case "editMessageText":
        return this.#editMessageText(params, response);
      case "answerCallbackQuery":
        return this.#answerCallbackQuery(params, response);
    }
  }

  #deliver(): void {
    if (this.#waiter === undefined || this.#queue.length === 0) return;
    const current = this.#waiter;
    this.#waiter = undefined;
    clearTimeout(current.timer);
    current.resolve([...this.#queue]);
  }

  #enqueue(update: Record<string, unknown>): void {
    this.#queue.push({ ...update, update_id: this.#nextUpdate++ });
    this.#deliver();
  }

  #getUpdates(params: Record<string, unknown>, response: ServerResponse, request: IncomingMessage): void {
    const offset = params.offset === undefined ? undefined : Number(params.offset);
    if (offset !== undefined) while (this.#queue.length > 0 && (this.#queue[0]?.update_id ?? 0) < offset) this.#queue.shift();
    const timeout = Math.min(Number(params.timeout ?? 0), 50);
    if (this.#queue.length > 0 || timeout <= 0) return answerOk(response, [...this.#queue]);
    if (this.#waiter !== undefined) {
      // Telegram answers a second concurrent poll with 409; a correct client never makes one.
      return answerError(response, 409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running");
    }
    const current: Waiter = {
      resolve: (updates) => answerOk(response, updates),
      timer: setTimeout(() => {
        if (this.#waiter === current) this.#waiter = undefined;
        answerOk(response, []);
      }, timeout * 1000),
    };
    this.#waiter = current;
    request.once("close", () => {
      if (this.#waiter === current) {
        this.#waiter = undefined;
        clearTimeout(current.timer);
      }
    });
  }

  #sendMessage(params: Record<string, unknown>, response: ServerResponse): void {
    const chatId = Number(params.chat_id);
    const firstName = this.#started.get(chatId);
    if (firstName === undefined) return answerError(response, 403, "Forbidden: bot can't initiate conversation with a user");
    const refusal = sendMessageRefusal(params);
    if (refusal !== undefined) return answerError(response, 400, refusal);
    const text = params.text as string;
    const markup = params.reply_markup as { inline_keyboard?: InlineButton[][] } | undefined;
    const message: StandInMessage = {
      message_id: this.#nextMessage++,
      chat: { id: chatId, type: "private", first_name: firstName },
      from: this.#bot,
      date: Math.floor(Date.now() / 1000),
      text,
      ...(markup?.inline_keyboard === undefined ? {} : { reply_markup: { inline_keyboard: markup.inline_keyboard } }),
      history: [text],
    };
    this.#messages.set(chatId, [...(this.#messages.get(chatId) ?? []), message]);
    answerOk(response, publicMessage(message));
  }

  #editMessageText(params: Record<string, unknown>, response: ServerResponse): void {
    const message = (this.#messages.get(Number(params.chat_id)) ?? []).find((candidate) => candidate.message_id === Number(params.message_id));
    if (message === undefined) return answerError(response, 400, "Bad Request: message to edit not found");
    const keyboard = (params.reply_markup as { inline_keyboard?: InlineButton[][] } | undefined)?.inline_keyboard;
    if (params.text === message.text && JSON.stringify(keyboard ?? null) === JSON.stringify(message.reply_markup?.inline_keyboard ?? null)) {
      return answerError(response, 400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message");
    }
    message.text = String(params.text);
    message.history.push(message.text);
    // Without reply_markup an edit removes the inline keyboard, as Telegram does.
    if (keyboard === undefined || keyboard.length === 0) delete message.reply_markup;
    else message.reply_markup = { inline_keyboard: keyboard };
    answerOk(response, publicMessage(message));
  }

  #answerCallbackQuery(params: Record<string, unknown>, response: ServerResponse): void {
    const id = String(params.callback_query_id);
    if (!this.#callbackIds.delete(id)) return answerError(response, 400, "Bad Request: query is too old and response timeout expired or query ID is invalid");
    this.answers.push({ callback_query_id: id, ...(typeof params.text === "string" ? { text: params.text } : {}), at: performance.now() });
    answerOk(response, true);
  }
}
