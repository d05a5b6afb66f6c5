/* chat.js - the chat page served by hearthd at / (docs/chat-page.md).
 *
 * A client of the public API only: GET /v1/models fills the model menu,
 * POST /v1/chat/completions with stream: true answers, read here as
 * Server-Sent Events from fetch's body stream. Conversations, the API key
 * and the settings live in this browser's localStorage.
 *
 * Safety: text from the model or the user never goes through an HTML
 * parser. Markdown is turned into elements with createElement and
 * textContent, links only for http(s) URLs; the page's
 * Content-Security-Policy forbids inline script besides. */
'use strict';

(() => {
  const STORE = {
    key: 'hearth.apiKey',
    conversations: 'hearth.conversations',
    current: 'hearth.current',
    model: 'hearth.model',
    maxTokens: 'hearth.maxTokens',
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    model: $('model'),
    models: $('models'),
    maxTokens: $('max-tokens'),
    apiKey: $('api-key'),
    newConv: $('new'),
    list: $('conversations'),
    status: $('status'),
    log: $('log'),
    form: $('composer'),
    message: $('message'),
    send: $('send'),
  };

  /* ------------------------------------------------------------ storage */

  function load(key, fallback) {
    try {
      const v = localStorage.getItem(key);
      return v === null ? fallback : JSON.parse(v);
    } catch {
      return fallback;
    }
  }

  function store(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch (e) {
      setStatus(`Could not save in this browser's storage: ${e.message}`, true);
    }
  }

  /* A conversation: {id, title, created, messages: [{role, content,
   * meta?, error?}]}; anything else found in storage is dropped. */
  function loadConversations() {
    const list = load(STORE.conversations, []);
    if (!Array.isArray(list))
      return [];
    return list.filter((c) => c && typeof c.id === 'string' && Array.isArray(c.messages))
      .map((c) => ({
        id: c.id,
        title: typeof c.title === 'string' ? c.title : 'Conversation',
        created: Number(c.created) || 0,
        messages: c.messages.filter((m) => m && (m.role === 'user' || m.role === 'assistant') &&
                                           typeof m.content === 'string'),
      }));
  }

  let conversations = loadConversations();
  let current = load(STORE.current, null);
  let localModel = null; /* the id /v1/models lists as owned by hearth */
  let streaming = null;  /* the AbortController of the answer being read */

  function currentConversation() {
    return conversations.find((c) => c.id === current) || null;
  }

  function saveConversations() {
    store(STORE.conversations, conversations);
    store(STORE.current, current);
  }

  function newId() {
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
  }

  /* ------------------------------------------------------------ markdown */

  function el(tag, cls) {
    const e = document.createElement(tag);
    if (cls)
      e.className = cls;
    return e;
  }

  function text(into, s) {
    if (s)
      into.append(document.createTextNode(s));
  }

  /* An absolute http(s) URL, normalised, or null: nothing else becomes a
   * link (javascript:, data:, relative paths stay text). */
  function safeUrl(href) {
    try {
      const u = new URL(href);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch {
      return null;
    }
  }

  function link(into, label, href) {
    const url = safeUrl(href);
    if (!url) {
      text(into, label === href ? label : `${label} (${href})`);
      return;
    }
    const a = el('a');
    a.href = url;
    a.rel = 'noopener noreferrer';
    a.target = '_blank';
    a.textContent = label || url;
    into.append(a);
  }

  /* Where the emphasis opened at `from` by `mark` closes, or -1. A closing
   * mark follows a non-space; `_` must not sit inside a word. */
  function closeOf(s, mark, from) {
    for (let j = s.indexOf(mark, from); j >= 0; j = s.indexOf(mark, j + 1)) {
      if (j === from || /\s/.test(s[j - 1]))
        continue;
      if (mark.length === 1 && s[j + 1] === mark)
        continue; /* part of a double mark */
      if (mark[0] === '_' && /\w/.test(s[j + mark.length] || ''))
        continue;
      return j;
    }
    return -1;
  }

  /* Inline Markdown of one line: `code`, **strong**, *em*, [text](url),
   * bare http(s) URLs, backslash escapes. Everything else is text. */
  function inline(s, into) {
    let buf = '';
    const flush = () => {
      text(into, buf);
      buf = '';
    };
    let i = 0;
    while (i < s.length) {
      const c = s[i];
      if (c === '\\' && i + 1 < s.length && /[\\`*_[\]()#+\-.!<>~|]/.test(s[i + 1])) {
        buf += s[i + 1];
        i += 2;
        continue;
      }
      if (c === '`') {
        let n = 1;
        while (s[i + n] === '`')
          n++;
        const end = s.indexOf('`'.repeat(n), i + n);
        if (end > i + n) {
          flush();
          const code = el('code');
          code.textContent = s.slice(i + n, end);
          into.append(code);
          i = end + n;
        } else {
          buf += '`'.repeat(n);
          i += n;
        }
        continue;
      }
      if (c === '*' || c === '_') {
        const mark = s[i + 1] === c ? c + c : c;
        const next = s[i + mark.length];
        const opens = next !== undefined && !/\s/.test(next) &&
                      (c === '*' || i === 0 || !/\w/.test(s[i - 1]));
        const end = opens ? closeOf(s, mark, i + mark.length) : -1;
        if (end > 0) {
          flush();
          const e = el(mark.length === 2 ? 'strong' : 'em');
          inline(s.slice(i + mark.length, end), e);
          into.append(e);
          i = end + mark.length;
        } else {
          buf += mark;
          i += mark.length;
        }
        continue;
      }
      if (c === '[') {
        const m = /^\[([^\]\n]*)\]\(\s*((?:[^\s()]|\([^\s()]*\))*)\s*\)/.exec(s.slice(i));
        if (m) {
          flush();
          link(into, m[1], m[2]);
          i += m[0].length;
          continue;
        }
      }
      if ((c === 'h' || c === 'H') && (i === 0 || !/\w/.test(s[i - 1])) &&
          s.slice(i, i + 4).toLowerCase() === 'http') {
        const m = /^https?:\/\/[^\s<>"'`]+/i.exec(s.slice(i));
        const url = m ? m[0].replace(/[.,;:!?)\]*_]+$/, '') : '';
        if (url.length > 8) {
          flush();
          link(into, url, url);
          i += url.length;
          continue;
        }
      }
      buf += c;
      i++;
    }
    flush();
  }

  /* Block Markdown: fenced code (``` or ~~~, unclosed runs to the end, as
   * while streaming), headings, lists (- * + or 1.), paragraphs whose
   * single newlines stay line breaks. */
  function renderMarkdown(src, into) {
    const out = document.createDocumentFragment();
    const lines = src.replace(/\r\n?/g, '\n').split('\n');
    let para = [];
    let list = null;
    const flush = () => {
      if (!para.length)
        return;
      const p = el('p');
      para.forEach((line, k) => {
        if (k)
          p.append(el('br'));
        inline(line, p);
      });
      out.append(p);
      para = [];
    };
    for (let i = 0; i < lines.length;) {
      const line = lines[i];
      const fence = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/.exec(line);
      if (fence) {
        flush();
        list = null;
        const closing = new RegExp(`^ {0,3}${fence[1][0]}{${fence[1].length},}\\s*$`);
        const body = [];
        for (i++; i < lines.length && !closing.test(lines[i]); i++)
          body.push(lines[i]);
        i++;
        const pre = el('pre');
        const code = el('code');
        if (/^[\w+#.-]{1,32}$/.test(fence[2]))
          code.className = `language-${fence[2]}`;
        code.textContent = body.join('\n');
        pre.append(code);
        out.append(pre);
        continue;
      }
      i++;
      if (/^\s*$/.test(line)) {
        flush();
        list = null;
        continue;
      }
      const h = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
      if (h) {
        flush();
        list = null;
        const e = el(`h${Math.min(6, h[1].length + 2)}`);
        inline(h[2], e);
        out.append(e);
        continue;
      }
      const item = /^ {0,3}([-*+]|\d{1,9}[.)])\s+(.*)$/.exec(line);
      if (item) {
        flush();
        const ordered = /\d/.test(item[1][0]);
        if (!list || list.ordered !== ordered) {
          list = {el: el(ordered ? 'ol' : 'ul'), ordered, last: null};
          const start = parseInt(item[1], 10);
          if (ordered && start !== 1)
            list.el.start = start;
          out.append(list.el);
        }
        list.last = el('li');
        inline(item[2], list.last);
        list.el.append(list.last);
        continue;
      }
      if (list && /^\s{2,}\S/.test(line)) { /* an item's next line */
        list.last.append(el('br'));
        inline(line.trim(), list.last);
        continue;
      }
      list = null;
      para.push(line);
    }
    flush();
    into.replaceChildren(out);
  }

  /* ------------------------------------------------------------ view */

  /* The status line; what an answer put there (its error, "Done.") goes
   * when another conversation is opened, what the model menu said stays. */
  let statusOfAnswer = false;
  function setStatus(msg, isError, ofAnswer) {
    ui.status.textContent = msg;
    ui.status.classList.toggle('error', !!isError);
    statusOfAnswer = !!ofAnswer;
  }

  function openConversation(id) {
    current = id;
    store(STORE.current, current);
    if (statusOfAnswer)
      setStatus('', false);
    renderList();
    renderLog();
    ui.message.focus();
  }

  function fmt(x, digits) {
    return x.toLocaleString('en-US', {maximumFractionDigits: digits, minimumFractionDigits: digits});
  }

  /* "local (no-upstream) · stories260K · 64 tokens · 812.5 tokens/s ·
   * first token 35 ms" */
  function metaText(m) {
    const parts = [];
    if (m.route)
      parts.push(`route ${m.route}${m.reason ? ` (${m.reason})` : ''}`);
    if (m.model)
      parts.push(m.model);
    if (m.tokens !== undefined)
      parts.push(`${m.approx ? '≈' : ''}${m.tokens} tokens`);
    if (m.tps !== undefined)
      parts.push(`${fmt(m.tps, 1)} tokens/s`);
    if (m.ttft !== undefined)
      parts.push(`first token ${fmt(m.ttft, 0)} ms`);
    if (m.stopped)
      parts.push('stopped');
    return parts.join(' · ');
  }

  /* One message's element; `view.update()` redraws it from `msg`. */
  function messageView(msg) {
    const root = el('article', `msg ${msg.role}`);
    const who = el('span', 'who');
    who.textContent = msg.role === 'user' ? 'You' : 'Assistant';
    const body = el('div', 'body');
    const meta = el('div', 'meta');
    const err = el('p', 'error-text');
    root.append(who, body, err, meta);
    const update = () => {
      if (msg.role === 'user')
        body.textContent = msg.content;
      else
        renderMarkdown(msg.content, body);
      root.classList.toggle('error', !!msg.error);
      err.textContent = msg.error ? `Error: ${msg.error}` : '';
      err.hidden = !msg.error;
      meta.textContent = msg.meta ? metaText(msg.meta) : '';
      meta.hidden = !msg.meta;
    };
    update();
    return {root, update};
  }

  function nearBottom() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
  }

  function append(msg) {
    const stick = nearBottom();
    const view = messageView(msg);
    ui.log.append(view.root);
    if (stick)
      ui.log.scrollTop = ui.log.scrollHeight;
    return view;
  }

  function renderLog() {
    ui.log.replaceChildren();
    const conv = currentConversation();
    if (!conv || !conv.messages.length) {
      const hint = el('p', 'hint');
      hint.textContent = 'Type a message below to start a conversation.';
      ui.log.append(hint);
      return;
    }
    conv.messages.forEach(append);
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  function renderList() {
    ui.list.replaceChildren();
    for (const conv of conversations) {
      const li = el('li');
      const open = el('button', 'open');
      open.type = 'button';
      open.textContent = conv.title;
      open.title = conv.title;
      if (conv.id === current)
        open.setAttribute('aria-current', 'true');
      open.addEventListener('click', () => openConversation(conv.id));
      const del = el('button', 'delete');
      del.type = 'button';
      del.textContent = '×';
      del.setAttribute('aria-label', `Delete conversation: ${conv.title}`);
      del.addEventListener('click', () => {
        conversations = conversations.filter((c) => c !== conv);
        if (current === conv.id)
          current = null;
        saveConversations();
        renderList();
        renderLog();
      });
      li.append(open, del);
      ui.list.append(li);
    }
  }

  function setStreaming(controller) {
    streaming = controller;
    ui.send.dataset.state = controller ? 'stop' : 'send';
    ui.send.textContent = controller ? 'Stop' : 'Send';
    ui.log.setAttribute('aria-busy', controller ? 'true' : 'false');
  }

  /* ------------------------------------------------------------ API */

  function authHeaders() {
    const key = ui.apiKey.value.trim();
    return key ? {Authorization: `Bearer ${key}`} : {};
  }

  /* The message of an error answer ({"error": {"message": ...}}). */
  async function errorOf(resp) {
    let msg = `HTTP ${resp.status}`;
    try {
      const body = await resp.json();
      if (body && body.error && typeof body.error.message === 'string')
        msg = `${body.error.message} (HTTP ${resp.status})`;
    } catch {
      /* not JSON: the status says enough */
    }
    if (resp.status === 401)
      msg = `hearthd wants an API key: type it in the API key field above. ${msg}`;
    return msg;
  }

  /* Fill the model menu from /v1/models; of overlapping calls (the key
   * typed twice) only the last one's answer is used. */
  let modelsCall = 0;
  async function loadModels() {
    const call = ++modelsCall;
    let list = null;
    let problem = null;
    try {
      const resp = await fetch('/v1/models', {headers: authHeaders()});
      if (resp.ok)
        list = await resp.json();
      else
        problem = await errorOf(resp);
    } catch (e) {
      problem = `Cannot reach hearthd: ${e.message}`;
    }
    if (call !== modelsCall)
      return;
    ui.models.replaceChildren();
    localModel = null;
    if (problem) {
      setStatus(problem, true);
      return;
    }
    for (const m of (list && Array.isArray(list.data)) ? list.data : []) {
      /* "auto" is the router's choice, offered above */
      if (!m || typeof m.id !== 'string' || m.id === 'auto')
        continue;
      if (!localModel && m.owned_by === 'hearth')
        localModel = m.id;
      const o = el('option');
      o.value = `model:${m.id}`;
      o.textContent = m.owned_by && m.owned_by !== 'hearth' ? `${m.id} (${m.owned_by})` : m.id;
      ui.models.append(o);
    }
    const saved = load(STORE.model, null);
    const want = [saved, localModel ? `model:${localModel}` : null, 'route:auto'];
    ui.model.value = want.find((v) => v && [...ui.model.options].some((o) => o.value === v));
    setStatus(localModel ? `Ready: ${localModel}` : 'No local model is loaded; the router may answer.', false);
  }

  /* Read Server-Sent Events from a fetch body: `onData` gets the data of
   * each event (lines joined by newlines) and returns true to stop
   * reading; comments (": ping") and other fields are skipped. Returns
   * whether `onData` stopped it (the stream said [DONE]). */
  async function readEvents(body, onData) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let data = [];
    try {
      for (;;) {
        const {value, done} = await reader.read();
        buf += done ? decoder.decode() : decoder.decode(value, {stream: true});
        for (;;) {
          const nl = buf.search(/[\r\n]/);
          /* a CR at the end may be the first half of CRLF */
          if (nl < 0 || (nl === buf.length - 1 && buf[nl] === '\r' && !done))
            break;
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
          if (line === '') {
            const d = data.join('\n');
            const had = data.length > 0;
            data = [];
            if (had && onData(d))
              return true;
            continue;
          }
          if (line[0] === ':')
            continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? '' : line.slice(colon + 1);
          if (val[0] === ' ')
            val = val.slice(1);
          if (field === 'data')
            data.push(val);
        }
        if (done)
          return data.length > 0 && onData(data.join('\n'));
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  /* Send the message box's text in the current conversation (a new one
   * when there is none) and stream the answer into it. */
  async function send() {
    const content = ui.message.value;
    if (streaming || !content.trim())
      return;
    let conv = currentConversation();
    if (!conv) {
      const title = content.trim().split('\n')[0].slice(0, 60);
      conv = {id: newId(), title, created: Date.now(), messages: []};
      conversations.unshift(conv);
      current = conv.id;
    }
    const hint = ui.log.querySelector('.hint');
    if (hint)
      hint.remove();
    const history = conv.messages.filter((m) => !m.error && m.content)
      .map((m) => ({role: m.role, content: m.content}));
    history.push({role: 'user', content});
    const userMsg = {role: 'user', content};
    const answer = {role: 'assistant', content: '', meta: {}};
    conv.messages.push(userMsg, answer);
    saveConversations();
    renderList();
    ui.message.value = '';
    append(userMsg);
    const view = append(answer);

    const body = {messages: history, stream: true, stream_options: {include_usage: true}};
    const headers = {'Content-Type': 'application/json', ...authHeaders()};
    const choice = ui.model.value || 'route:auto';
    if (choice.startsWith('route:')) {
      headers['X-Hearth-Route'] = choice.slice(6);
      if (localModel)
        body.model = localModel;
    } else {
      body.model = choice.slice(6);
    }
    const maxTokens = parseInt(ui.maxTokens.value, 10);
    if (maxTokens > 0)
      body.max_tokens = maxTokens;

    const controller = new AbortController();
    setStreaming(controller);
    setStatus('Answering…', false, true);
    const t0 = performance.now();
    let tFirst = null;
    let chunks = 0;
    let usage = null;
    let drawPending = false;
    const draw = () => {
      drawPending = false;
      if (!view.root.isConnected)
        return;
      const stick = nearBottom();
      view.update();
      if (stick)
        ui.log.scrollTop = ui.log.scrollHeight;
    };
    const meta = answer.meta;
    try {
      const resp = await fetch('/v1/chat/completions', {
        method: 'POST', headers, body: JSON.stringify(body), signal: controller.signal,
      });
      meta.route = resp.headers.get('X-Hearth-Route') || undefined;
      meta.reason = resp.headers.get('X-Hearth-Route-Reason') || undefined;
      if (!resp.ok)
        throw new Error(await errorOf(resp));
      const finished = await readEvents(resp.body, (data) => {
        if (data === '[DONE]')
          return true;
        let ev;
        try {
          ev = JSON.parse(data);
        } catch {
          throw new Error('the server sent an event that is not JSON');
        }
        if (ev && ev.error) {
          const e = ev.error;
          throw new Error(typeof e.message === 'string' ? e.message : JSON.stringify(e));
        }
        if (ev && typeof ev.model === 'string')
          meta.model = ev.model;
        if (ev && ev.usage)
          usage = ev.usage;
        const delta = ev && Array.isArray(ev.choices) && ev.choices[0] && ev.choices[0].delta;
        if (delta && typeof delta.content === 'string' && delta.content) {
          if (tFirst === null)
            tFirst = performance.now();
          chunks++;
          answer.content += delta.content;
          if (!drawPending) {
            drawPending = true;
            requestAnimationFrame(draw);
          }
        }
        return false;
      });
      if (!finished)
        throw new Error('the stream ended before [DONE]');
    } catch (e) {
      if (e && e.name === 'AbortError')
        meta.stopped = true;
      else
        answer.error = e && e.message ? e.message : String(e);
    }
    const tEnd = performance.now();
    const n = usage && Number.isInteger(usage.completion_tokens) ? usage.completion_tokens : chunks;
    if (n > 0) {
      meta.tokens = n;
      meta.approx = !usage;
    }
    if (tFirst !== null) {
      meta.ttft = tFirst - t0;
      /* decode speed: the tokens after the first over the time after it */
      if (n > 1 && tEnd > tFirst)
        meta.tps = (n - 1) / ((tEnd - tFirst) / 1000);
    }
    setStreaming(null);
    draw();
    saveConversations();
    if (answer.error)
      setStatus(answer.error, true, true);
    else
      setStatus(meta.stopped ? 'Stopped.' : 'Done.', false, true);
  }

  /* ------------------------------------------------------------ events */

  ui.form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (streaming)
      streaming.abort();
    else
      send();
  });

  ui.message.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });

  ui.newConv.addEventListener('click', () => openConversation(null));

  ui.model.addEventListener('change', () => store(STORE.model, ui.model.value));
  ui.maxTokens.addEventListener('input', () => store(STORE.maxTokens, ui.maxTokens.value));
  const keyChanged = () => {
    store(STORE.key, ui.apiKey.value.trim());
    loadModels();
  };
  ui.apiKey.addEventListener('change', keyChanged);
  ui.apiKey.addEventListener('keydown', (e) => {
    if (e.key === 'Enter')
      keyChanged();
  });

  ui.apiKey.value = load(STORE.key, '') || '';
  const savedMax = load(STORE.maxTokens, null);
  if (savedMax !== null)
    ui.maxTokens.value = savedMax;
  if (!currentConversation())
    current = null;
  renderList();
  renderLog();
  loadModels();
})();
