/* Papershelf reader tools: stars, read marks, filter bar, keyboard keys, theme, copy, FAQ.
   Progressive enhancement only: every page reads fine without this file. Everything
   personal stays in this browser's localStorage. No inline script, no CDN (CSP 'self'). */
(function () {
  "use strict";

  var KEY = { stars: "papershelf.stars", read: "papershelf.read", theme: "papershelf.theme",
              hideRead: "papershelf.hideRead", keywords: "papershelf.keywords",
              faqLang: "papershelf.faqLang", hideReplacements: "papershelf.hideReplacements" };
  var THEMES = ["auto", "dark", "light"];

  // --- storage ------------------------------------------------------------------------
  function load(key, fallback) {
    try {
      var v = JSON.parse(window.localStorage.getItem(key));
      return v === null || v === undefined ? fallback : v;
    } catch (e) { return fallback; }
  }
  function save(key, value) {
    try { window.localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* full or off */ }
  }
  // Sets of ids are stored as {id: epoch ms}.
  function idSet(key) { var v = load(key, {}); return v && typeof v === "object" && !Array.isArray(v) ? v : {}; }

  // --- theme (runs at once, before the body is drawn, so there is no flash) ----------
  function theme() { var t = load(KEY.theme, "auto"); return THEMES.indexOf(t) >= 0 ? t : "auto"; }
  function applyTheme(t) {
    if (t === "auto") document.documentElement.removeAttribute("data-theme");
    else document.documentElement.setAttribute("data-theme", t);
  }
  applyTheme(theme());

  // --- small DOM helpers --------------------------------------------------------------
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function cards() { return $$("article.paper[data-id]"); }
  function plain(node) {
    if (!node) return "";
    var c = node.cloneNode(true);
    $$("math", c).forEach(function (m) {
      var tex = m.getAttribute("alttext");
      m.replaceWith(document.createTextNode(tex ? "$" + tex + "$" : m.textContent));
    });
    return c.textContent.replace(/\s+/g, " ").trim();
  }

  // --- stars and read marks -----------------------------------------------------------
  function toggle(key, id, on) {
    var s = idSet(key);
    if (on === undefined) on = !s[id];
    if (on) s[id] = Date.now(); else delete s[id];
    save(key, s);
    refreshMarks();
    return on;
  }
  function refreshMarks() {
    var stars = idSet(KEY.stars), read = idSet(KEY.read);
    cards().forEach(function (c) {
      var id = c.dataset.id, st = !!stars[id], rd = !!read[id];
      c.classList.toggle("ps-starred", st);
      c.classList.toggle("ps-read", rd);
      var sb = c.querySelector("[data-ps-star]"), rb = c.querySelector("[data-ps-read]");
      if (sb) { sb.setAttribute("aria-pressed", String(st)); sb.textContent = st ? "[★ Starred]" : "[☆ Star]"; }
      if (rb) { rb.setAttribute("aria-pressed", String(rd)); rb.textContent = rd ? "[✓ Read]" : "[Mark read]"; }
    });
    applyVisibility();
  }

  function copyText(text, button) {
    function done(ok) {
      var old = button.textContent;
      button.textContent = ok ? "[Copied]" : "[Copy failed]";
      setTimeout(function () { button.textContent = old; }, 1500);
    }
    function fallback() {
      var t = el("textarea", { "aria-hidden": "true", "class": "ps-offscreen" });
      t.value = text;
      document.body.appendChild(t);
      t.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      t.remove();
      done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
    } else fallback();
  }
  function cardText(c) {
    var authors = c.querySelector(".authors");
    var a = authors ? authors.cloneNode(true) : null;
    if (a) $$("summary", a).forEach(function (s) { s.replaceWith(document.createTextNode(", ")); });
    return [plain(c.querySelector(".title")), a ? plain(a).replace(/\s*(,\s*)+/g, ", ") : "",
            c.dataset.abs || "", "", plain(c.querySelector(".abstract p"))].join("\n");
  }

  function enhanceCard(c) {
    if (c.dataset.psReady) return;
    c.dataset.psReady = "1";
    var bar = c.querySelector("[data-actions]") || c.appendChild(el("p", { "class": "actions" }));
    var star = el("button", { type: "button", "class": "ps-btn", "data-ps-star": "", "aria-pressed": "false", title: "Star (s)" }, "[☆ Star]");
    var read = el("button", { type: "button", "class": "ps-btn", "data-ps-read": "", "aria-pressed": "false", title: "Mark read (x)" }, "[Mark read]");
    var copy = el("button", { type: "button", "class": "ps-btn", "data-ps-copy": "", title: "Copy title, authors, link and abstract" }, "[Copy]");
    star.addEventListener("click", function () { toggle(KEY.stars, c.dataset.id); });
    read.addEventListener("click", function () { toggle(KEY.read, c.dataset.id); });
    copy.addEventListener("click", function () { copyText(cardText(c), copy); });
    bar.insertBefore(copy, bar.firstChild);
    bar.insertBefore(read, bar.firstChild);
    bar.insertBefore(star, bar.firstChild);
    // [FAQ] opens the answer in place (a plain click; a new tab still gets the FAQ page).
    $$("a[data-ps-faq]", c).forEach(function (a) {
      a.addEventListener("click", function (ev) {
        if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey || ev.button) return;
        ev.preventDefault();
        faqToggle(c);
      });
    });
    // Opening the PDF marks the paper read, as a reader would expect, and counts towards
    // the popularity sort (a POST: no state-changing GET).
    $$('a[href="' + (c.dataset.pdf || "#none") + '"]', c).forEach(function (a) {
      a.addEventListener("click", function () {
        toggle(KEY.read, c.dataset.id, true);
        countClick(c.dataset.id, "pdf");
      });
    });
  }

  function countClick(id, kind) {
    var url = "/api/v1/papers/" + encodeURIComponent(id) + "/clicks";
    var body = JSON.stringify({ kind: kind });
    try {
      if (navigator.sendBeacon &&
          navigator.sendBeacon(url, new Blob([body], { type: "application/json" }))) { return; }
    } catch (e) { /* fall through to fetch */ }
    fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: body,
                 keepalive: true }).catch(function () {});
  }

  // --- FAQ: ask for it (POST), then follow it as it is written (server-sent events) -----
  // The answer is Markdown-ish LLM text: drawn with DOM nodes and textContent only, never
  // as HTML. faqBlocks mirrors app/faq.py's `blocks`.
  var FAQ_LANGS = { en: "English", zh: "中文" };
  var FAQ_HEADING = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/, FAQ_BULLET = /^\s*[-*+•]\s+(.*)$/,
      FAQ_NUMBERED = /^\s*\d{1,3}[.)]\s+(.*)$/;
  function faqLang() {
    var l = load(KEY.faqLang, null);
    if (FAQ_LANGS.hasOwnProperty(l)) return l;
    return /^zh/i.test(navigator.language || "") ? "zh" : "en";
  }
  function faqBlocks(text) {
    var out = [], kind = null, lines = [];
    function flush() { if (kind && lines.length) out.push({ kind: kind, lines: lines }); kind = null; lines = []; }
    text.replace(/\r\n/g, "\n").split("\n").forEach(function (raw) {
      var line = raw.trim(), m;
      if (!line || /^[-*_]{3,}$/.test(line)) { flush(); return; }
      if ((m = FAQ_HEADING.exec(raw))) { flush(); out.push({ kind: "heading", lines: [m[1]] }); return; }
      var lk = (m = FAQ_BULLET.exec(raw)) ? "ul" : (m = FAQ_NUMBERED.exec(raw)) ? "ol" : null;
      if (lk) { if (kind !== lk) { flush(); kind = lk; } lines.push(m[1]); return; }
      if ((kind === "ul" || kind === "ol") && /^\s/.test(raw) && lines.length) { lines[lines.length - 1] += " " + line; return; }
      if (kind !== "paragraph") { flush(); kind = "paragraph"; }
      lines.push(line);
    });
    flush();
    return out;
  }
  function faqInline(parent, text) {
    var re = /\*\*(.+?)\*\*|__(.+?)__/g, last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      parent.appendChild(el("strong", {}, m[1] || m[2]));
      last = m.index + m[0].length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }
  function faqRender(body, text) {
    body.textContent = "";
    faqBlocks(text).forEach(function (b) {
      var node;
      if (b.kind === "heading" || b.kind === "paragraph") {
        node = el(b.kind === "heading" ? "h3" : "p");
        faqInline(node, b.lines.join(" "));
      } else {
        node = el(b.kind);
        b.lines.forEach(function (line) { var li = el("li"); faqInline(li, line); node.appendChild(li); });
      }
      body.appendChild(node);
    });
  }
  function faqStop(section) {
    if (section.psFaqSource) { section.psFaqSource.close(); section.psFaqSource = null; }
  }
  function faqDone(d) {
    return "Written by " + (d.model || "the LLM") + " from the title and abstract" +
           (d.finish_reason === "length" ? " (cut at the length limit)" : "") + ".";
  }
  function faqStart(section, post) {
    var id = section.dataset.id, lang = section.dataset.lang === "zh" ? "zh" : "en";
    var status = section.querySelector("[data-faq-status]"), body = section.querySelector("[data-faq-body]");
    var page = section.querySelector("[data-faq-page]");
    var base = "/api/v1/papers/" + encodeURIComponent(id) + "/faq";
    var text = "", drawing = false;
    function say(t) { status.textContent = t; }
    function draw() {
      if (drawing) return;
      drawing = true;
      window.requestAnimationFrame(function () { drawing = false; faqRender(body, text); });
    }
    function follow(url) {
      var es = new EventSource(url);
      section.psFaqSource = es;
      es.addEventListener("queued", function (e) {
        var n = JSON.parse(e.data).position;
        say(typeof n === "number" ? "Queued for the LLM: " + n + " job" + (n === 1 ? "" : "s") + " ahead…" : "Queued for the LLM…");
      });
      es.addEventListener("start", function () { text = ""; draw(); say("Writing…"); });
      es.addEventListener("delta", function (e) { text += JSON.parse(e.data).text || ""; draw(); });
      es.addEventListener("reset", function () { text = ""; draw(); say("The answer broke off; starting over…"); });
      es.addEventListener("done", function (e) {
        var d = JSON.parse(e.data);
        faqStop(section);
        text = d.content || "";
        faqRender(body, text);
        say(faqDone(d));
      });
      es.addEventListener("error", function (e) {
        if (e.data) { faqStop(section); say(JSON.parse(e.data).message || "The FAQ could not be written."); return; }
        // No data: the connection itself. The browser reconnects (resuming by event id)
        // unless it gave up.
        if (es.readyState === EventSource.CLOSED) { faqStop(section); say("Lost the connection to the server."); }
      });
    }
    faqStop(section);
    if (page) page.href = "/arxiv/" + id + "/faq?lang=" + lang;
    if (!post) { say("Connecting…"); follow(base + "/stream?lang=" + lang); return; }
    say("Asking…");
    fetch(base + "?lang=" + lang, { method: "POST", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (d) { return { ok: r.ok, d: d }; }); })
      .then(function (res) {
        var d = res.d || {};
        if (!res.ok) { say((d.error && d.error.message) || "The FAQ is unavailable."); return; }
        if (d.status === "done") { body.textContent = ""; faqRender(body, d.content || ""); say(faqDone(d)); return; }
        say(d.status === "running" ? "Writing…" : "Queued for the LLM…");
        follow(d.stream_url);
      })
      .catch(function (err) { say("Could not reach the server: " + err.message); });
  }
  function faqToggle(c) {
    var panel = c.querySelector("section.ps-faq");
    if (panel) { faqStop(panel); panel.remove(); return; }
    panel = el("section", { "class": "faq ps-faq", "data-faq": "", "data-id": c.dataset.id,
                            "data-lang": faqLang(), "aria-label": "FAQ" });
    var head = el("p", { "class": "faq-langs muted" });
    Object.keys(FAQ_LANGS).forEach(function (l) {
      var b = el("button", { type: "button", "class": "ps-btn", "data-faq-lang": l,
                             "aria-pressed": String(l === panel.dataset.lang) }, FAQ_LANGS[l]);
      b.addEventListener("click", function () {
        save(KEY.faqLang, l);
        panel.dataset.lang = l;
        $$("[data-faq-lang]", panel).forEach(function (x) { x.setAttribute("aria-pressed", String(x === b)); });
        faqStart(panel, true);
      });
      head.appendChild(b);
    });
    head.appendChild(el("a", { href: "/arxiv/" + c.dataset.id + "/faq", "data-faq-page": "" }, "FAQ page"));
    head.appendChild(document.createTextNode(" · "));
    head.appendChild(el("a", { href: "/faq/prompt" }, "the prompt"));
    panel.appendChild(head);
    panel.appendChild(el("p", { "class": "faq-status muted", "data-faq-status": "", role: "status" }));
    panel.appendChild(el("div", { "class": "faq-body", "data-faq-body": "" }));
    var bar = c.querySelector("[data-actions]");
    if (bar) bar.parentNode.insertBefore(panel, bar.nextSibling); else c.appendChild(panel);
    countClick(c.dataset.id, "summary");  // Cool Papers' popularity counts FAQ opens too
    faqStart(panel, true);
  }
  function faqPage(section) {
    // The FAQ page: follow a generation in progress; the "Generate" form asks in place.
    var state = section.dataset.state;
    if (state === "queued" || state === "running") faqStart(section, false);
    var form = section.querySelector("form[data-faq-form]");
    if (form) form.addEventListener("submit", function (ev) { ev.preventDefault(); form.remove(); faqStart(section, true); });
  }

  // --- filter bar ---------------------------------------------------------------------
  var filter = { open: false, bar: null, input: null, count: null, mode: "and",
                 fields: { title: true, abstract: true, authors: false } };
  var FIELD_SEL = { title: ".title", abstract: ".abstract p, .tldr", authors: ".authors" };

  function parseTerms(text) {
    var inc = [], exc = [], re = /(-?)(?:"([^"]+)"|(\S+))/g, m;
    while ((m = re.exec(text)) !== null) {
      var t = (m[2] || m[3] || "").toLowerCase().trim();
      if (!t || t === "-") continue;
      (m[1] ? exc : inc).push(t);
    }
    return { inc: inc, exc: exc };
  }
  function unmark(root) {
    $$("mark.ps-hl", root).forEach(function (m) {
      var p = m.parentNode;
      p.replaceChild(document.createTextNode(m.textContent), m);
      p.normalize();
    });
  }
  function escapeRe(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }
  function markIn(root, re) {
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
      acceptNode: function (n) {
        return n.parentNode.closest("math, mark, button, script") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT;
      }
    });
    var nodes = [], n;
    while ((n = walker.nextNode())) nodes.push(n);
    nodes.forEach(function (node) {
      var text = node.nodeValue, last = 0, frag = null, m;
      re.lastIndex = 0;
      while ((m = re.exec(text)) !== null) {
        if (!m[0]) { re.lastIndex++; continue; }
        frag = frag || document.createDocumentFragment();
        frag.appendChild(document.createTextNode(text.slice(last, m.index)));
        frag.appendChild(el("mark", { "class": "ps-hl" }, m[0]));
        last = m.index + m[0].length;
      }
      if (frag) {
        frag.appendChild(document.createTextNode(text.slice(last)));
        node.parentNode.replaceChild(frag, node);
      }
    });
  }

  function applyVisibility() {
    var all = cards();
    if (!all.length) return;
    var hideRead = !!load(KEY.hideRead, false), read = idSet(KEY.read);
    var terms = filter.open && filter.input ? parseTerms(filter.input.value) : { inc: [], exc: [] };
    var active = terms.inc.length + terms.exc.length > 0;
    var fields = Object.keys(filter.fields).filter(function (f) { return filter.fields[f]; });
    var re = terms.inc.length ? new RegExp(terms.inc.map(escapeRe).join("|"), "gi") : null;
    var shown = 0;
    all.forEach(function (c) {
      var match = true;
      unmark(c);
      if (active) {
        var hay = fields.map(function (f) {
          return $$(FIELD_SEL[f], c).map(function (n) { return plain(n); }).join(" ");
        }).join(" \n ").toLowerCase();
        var has = function (t) { return hay.indexOf(t) >= 0; };
        if (terms.inc.length) match = filter.mode === "and" ? terms.inc.every(has) : terms.inc.some(has);
        if (match && terms.exc.some(has)) match = false;
        if (match && re) fields.forEach(function (f) { $$(FIELD_SEL[f], c).forEach(function (n) { markIn(n, re); }); });
      }
      var hide = !match || (hideRead && !!read[c.dataset.id]);
      c.classList.toggle("ps-hidden", hide);
      if (!hide) shown++;
    });
    if (filter.count) filter.count.textContent = shown + " of " + all.length + " shown";
    document.documentElement.classList.toggle("ps-filtering", active || hideRead);
  }

  function buildFilterBar() {
    var bar = el("div", { "class": "ps-filter", role: "search", "aria-label": "Filter papers on this page", hidden: "" });
    var input = el("input", { type: "search", "data-ps-filter-input": "",
                              placeholder: 'keywords, "a phrase", -exclude', "aria-label": "Filter keywords" });
    var mode = el("select", { "aria-label": "Match all or any keyword", "data-ps-filter-mode": "" });
    mode.appendChild(el("option", { value: "and" }, "all (AND)"));
    mode.appendChild(el("option", { value: "or" }, "any (OR)"));
    bar.appendChild(input);
    bar.appendChild(mode);
    Object.keys(filter.fields).forEach(function (f) {
      var label = el("label"), box = el("input", { type: "checkbox", "data-ps-field": f });
      box.checked = filter.fields[f];
      box.addEventListener("change", function () { filter.fields[f] = box.checked; applyVisibility(); });
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + f));
      bar.appendChild(label);
    });
    var count = el("span", { "class": "ps-count", "data-ps-count": "", role: "status" });
    var close = el("button", { type: "button", "aria-label": "Close the filter bar", title: "Close (Esc)" }, "×");
    bar.appendChild(count);
    bar.appendChild(close);
    input.addEventListener("input", applyVisibility);
    mode.addEventListener("change", function () { filter.mode = mode.value; applyVisibility(); });
    close.addEventListener("click", closeFilter);
    var main = document.querySelector("main");
    main.insertBefore(bar, main.firstChild);
    filter.bar = bar; filter.input = input; filter.count = count;
  }
  function openFilter() {
    if (!filter.bar) return;
    filter.open = true;
    filter.bar.hidden = false;
    filter.input.focus();
    filter.input.select();
    applyVisibility();
  }
  function closeFilter() {
    if (!filter.bar || !filter.open) return;
    filter.open = false;
    filter.bar.hidden = true;
    applyVisibility();
  }

  // --- keyboard -----------------------------------------------------------------------
  var help = null;
  var KEYS = [["j / k", "next / previous paper"], ["s", "star the current paper"],
              ["x", "mark it read (again: unread)"], ["o", "open its PDF"],
              ["Ctrl/⌘ F", "filter bar"], ["/", "focus the search box"], ["?", "this help"],
              ["Esc", "close the filter bar or this help"]];
  function toggleHelp(show) {
    if (!help) {
      help = el("div", { "class": "ps-overlay", role: "dialog", "aria-modal": "true", "aria-label": "Keyboard keys", hidden: "" });
      var box = el("div", { "class": "ps-dialog" });
      box.appendChild(el("h2", {}, "Keyboard keys"));
      var dl = el("dl");
      KEYS.forEach(function (k) { dl.appendChild(el("dt", {}, k[0])); dl.appendChild(el("dd", {}, k[1])); });
      box.appendChild(dl);
      var close = el("button", { type: "button" }, "Close");
      close.addEventListener("click", function () { toggleHelp(false); });
      box.appendChild(close);
      help.appendChild(box);
      help.addEventListener("click", function (e) { if (e.target === help) toggleHelp(false); });
      document.body.appendChild(help);
    }
    help.hidden = show === undefined ? !help.hidden : !show;
  }
  function visibleCards() { return cards().filter(function (c) { return !c.classList.contains("ps-hidden") && c.offsetParent !== null; }); }
  function current() {
    var a = document.activeElement;
    return a && a.matches && a.matches("article.paper[data-id]") ? a : document.querySelector("article.paper.ps-current");
  }
  function move(step) {
    var list = visibleCards();
    if (!list.length) return;
    var i = list.indexOf(current());
    var next = list[i < 0 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, i + step))];
    $$("article.paper.ps-current").forEach(function (c) { c.classList.remove("ps-current"); });
    next.classList.add("ps-current");
    next.focus({ preventScroll: true });
    next.scrollIntoView({ block: "start", behavior: "auto" });
  }
  function typing(t) {
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  function onKey(e) {
    if ((e.ctrlKey || e.metaKey) && !e.altKey && (e.key === "f" || e.key === "F")) {
      // A second Ctrl+F inside the bar falls through to the browser's own find.
      if (filter.bar && document.activeElement !== filter.input) { e.preventDefault(); openFilter(); }
      return;
    }
    if (e.key === "Escape") {
      if (help && !help.hidden) { toggleHelp(false); e.preventDefault(); return; }
      if (filter.open) { closeFilter(); e.preventDefault(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    var c = current();
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "s": if (c) toggle(KEY.stars, c.dataset.id); break;
      case "x": if (c) toggle(KEY.read, c.dataset.id); break;
      case "o":
        if (c && c.dataset.pdf) {
          toggle(KEY.read, c.dataset.id, true);
          countClick(c.dataset.id, "pdf");
          window.open(c.dataset.pdf, "_blank", "noopener");
        }
        break;
      case "/": {
        var q = document.querySelector('header .topsearch input[name="q"]');
        if (q) q.focus(); else return;
        break;
      }
      case "?": toggleHelp(); break;
      default: return;
    }
    e.preventDefault();
  }

  // --- toolbar (theme, filter, hide read, help) ---------------------------------------
  function buildTools() {
    var header = document.querySelector("header.top");
    if (!header) return;
    var tools = el("div", { "class": "ps-tools" });
    if (cards().length) {
      var fb = el("button", { type: "button", "data-ps-filter-open": "", title: "Filter papers (Ctrl/⌘ F)" }, "Filter");
      fb.addEventListener("click", function () { if (filter.open) closeFilter(); else openFilter(); });
      tools.appendChild(fb);
      var hr = el("button", { type: "button", "data-ps-hide-read": "", "aria-pressed": String(!!load(KEY.hideRead, false)), title: "Hide papers marked read" }, "Hide read");
      hr.addEventListener("click", function () {
        var on = !load(KEY.hideRead, false);
        save(KEY.hideRead, on);
        hr.setAttribute("aria-pressed", String(on));
        applyVisibility();
      });
      tools.appendChild(hr);
    }
    var tb = el("button", { type: "button", "data-ps-theme": "" });
    var label = function () {
      var t = theme();
      tb.textContent = { auto: "◐ Auto", dark: "☾ Dark", light: "☀ Light" }[t];
      tb.title = "Theme: " + t + " (click to switch)";
    };
    tb.addEventListener("click", function () {
      var t = THEMES[(THEMES.indexOf(theme()) + 1) % THEMES.length];
      save(KEY.theme, t);
      applyTheme(t);
      label();
    });
    label();
    tools.appendChild(tb);
    var hb = el("button", { type: "button", title: "Keyboard keys (?)", "aria-label": "Keyboard keys" }, "?");
    hb.addEventListener("click", function () { toggleHelp(); });
    tools.appendChild(hb);
    header.appendChild(tools);
  }

  // --- starred page: list, export, import ---------------------------------------------
  function b64urlEncode(text) {
    var bytes = new TextEncoder().encode(text), bin = "";
    bytes.forEach(function (b) { bin += String.fromCharCode(b); });
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function b64urlDecode(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TextDecoder().decode(bytes);
  }
  var ID_RE = /^([a-z-]+(\.[A-Z]{2})?\/\d{7}|\d{4}\.\d{4,5})(v\d+)?$/;
  function importData(data) {
    // Accepts {"stars": [...], "read": [...]} (ids or {id: time} maps) or a bare list of ids.
    var added = 0;
    function merge(key, v) {
      var ids = Array.isArray(v) ? v : v && typeof v === "object" ? Object.keys(v) : [];
      var s = idSet(key);
      ids.forEach(function (id) {
        if (typeof id !== "string" || !ID_RE.test(id.trim())) return;
        id = id.trim();
        if (!s[id]) { s[id] = Date.now(); if (key === KEY.stars) added++; }
      });
      save(key, s);
    }
    if (Array.isArray(data)) merge(KEY.stars, data);
    else if (data && typeof data === "object") {
      merge(KEY.stars, data.stars); merge(KEY.read, data.read);
      if (typeof data.keywords === "string" && data.keywords.length <= 500) save(KEY.keywords, data.keywords);
    }
    else throw new Error("not a Papershelf export");
    return added;
  }
  function starredIds() {
    var s = idSet(KEY.stars);
    return Object.keys(s).sort(function (a, b) { return s[b] - s[a]; });
  }
  var EXPORT_GET_MAX = 500;  // ids in an export link (app.web.export_lists.MAX_GET_IDS)
  function starredPage(root) {
    var status = root.querySelector("[data-starred-status]");
    var say = function (msg) { status.textContent = msg; };
    var m = /(?:^#|&)import=([A-Za-z0-9_-]+)/.exec(window.location.hash);
    if (m) {
      try { say("Imported " + importData(JSON.parse(b64urlDecode(m[1]))) + " new stars from the link."); }
      catch (e) { say("That import link is damaged: " + e.message); }
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    root.hidden = false;
    root.querySelector("[data-starred-download]").addEventListener("click", function () {
      var blob = new Blob([JSON.stringify({ papershelf: 1, exported: new Date().toISOString(),
        stars: starredIds(), read: Object.keys(idSet(KEY.read)),
        keywords: load(KEY.keywords, "") }, null, 2)], { type: "application/json" });
      var a = el("a", { href: URL.createObjectURL(blob), download: "papershelf-stars.json" });
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    });
    root.querySelector("[data-starred-import]").addEventListener("change", function (e) {
      var f = e.target.files && e.target.files[0];
      if (!f) return;
      f.text().then(function (t) {
        say("Imported " + importData(JSON.parse(t)) + " new stars from " + f.name + ".");
        render();
      }).catch(function (err) { say("Could not import " + f.name + ": " + err.message); });
    });
    function render() {
      var ids = starredIds();
      root.querySelector("[data-starred-summary]").textContent =
        ids.length ? ids.length + " starred paper" + (ids.length === 1 ? "" : "s") + " in this browser."
                   : "No stars yet: use [☆ Star] on any paper, or press s.";
      var link = root.querySelector("[data-starred-link]");
      link.value = window.location.origin + "/starred#import=" + b64urlEncode(JSON.stringify({ stars: ids }));
      var open = root.querySelector("[data-starred-open]");
      open.href = "/arxiv/" + ids.slice(0, 200).join(",");
      open.hidden = !ids.length;
      // Export: links while the ids fit a URL, else the same files by a posted form.
      var exp = root.querySelector("[data-starred-export]");
      if (exp) {
        var few = ids.length <= EXPORT_GET_MAX;
        exp.querySelector('input[name="ids"]').value = ids.join(",");
        $$("a[data-export-ext]", exp).forEach(function (a) {
          a.href = "/export." + a.dataset.exportExt + "?list=stars&ids=" + encodeURIComponent(ids.join(","));
          a.hidden = !few;
        });
        $$("button[data-export-post]", exp).forEach(function (b) { b.hidden = few; });
        exp.hidden = !ids.length;
      }
      var list = root.querySelector("[data-starred-list]");
      list.textContent = "";
      // The cards come from the paper pages themselves, 200 ids a request.
      var chunks = [];
      for (var i = 0; i < ids.length; i += 200) chunks.push(ids.slice(i, i + 200));
      Promise.all(chunks.map(function (chunk) {
        return fetch("/arxiv/" + chunk.map(encodeURIComponent).join(","))
          .then(function (r) { return r.text(); })
          .then(function (html) { return $$("article.paper[data-id]", new DOMParser().parseFromString(html, "text/html")); });
      })).then(function (groups) {
        groups.forEach(function (g) { g.forEach(function (c) { list.appendChild(document.importNode(c, true)); }); });
        var have = {};
        cards().forEach(function (c) { have[c.dataset.id] = true; enhanceCard(c); });
        ids.filter(function (id) { return !have[id]; }).forEach(function (id) {
          var p = el("p", { "class": "muted" }, id + ": not stored on this shelf yet. ");
          var a = el("a", { href: "https://arxiv.org/abs/" + id, rel: "noopener" }, "arXiv page");
          p.appendChild(a);
          list.appendChild(p);
        });
        refreshMarks();
        root.dataset.loaded = "1";
      }).catch(function (err) { say("Could not load the starred papers: " + err.message); });
    }
    render();
  }

  // --- "for you": the day ranked by this browser's stars -------------------------------
  // The stars travel with the request (a GET parameter) and go nowhere else: the server
  // keeps nothing. Without this script the sort shows the plain order and says why.
  var FOR_YOU_MAX = 500;
  // Stricter than ID_RE (a real month), so one odd stored id never spoils the request.
  var SEND_ID_RE = /^(\d{2}(0[1-9]|1[0-2])\.\d{4,5}|[a-z-]+(\.[A-Za-z]{2})?\/\d{2}(0[1-9]|1[0-2])\d{3})(v\d+)?$/;
  function starredParam() {
    return starredIds().filter(function (id) { return SEND_ID_RE.test(id); })
      .slice(0, FOR_YOU_MAX).join(",");
  }
  function forYou(form) {
    var select = form.querySelector('select[name="sort"]');
    if (!select) return;
    form.addEventListener("submit", function () {
      var input = form.querySelector('input[name="starred"]');
      var ids = select.value === "foryou" ? starredParam() : "";
      if (ids) {
        if (!input) { input = el("input", { type: "hidden", name: "starred" }); form.appendChild(input); }
        input.value = ids;
      } else if (input) input.remove();
    });
    if (form.dataset.sort !== "foryou") return;
    var ids = starredParam();
    if (!ids) { $$("[data-foryou-hint]").forEach(function (h) { h.hidden = false; }); return; }
    // The day links keep the sort; they take the stars along, so the next day comes ranked.
    $$("nav.days a[rel]").forEach(function (a) {
      var u = new URL(a.href, window.location.href);
      u.searchParams.set("starred", ids);
      a.href = u.toString();
    });
    // Reached without the stars (a bookmark, a day link): ask again with them.
    var url = new URL(window.location.href);
    if (!url.searchParams.get("starred")) {
      url.searchParams.set("starred", ids);
      window.location.replace(url.toString());
    }
  }

  // --- category picker on / (the form works without this: /pick builds the expression) --
  var PICK_NEXT = { off: "inc", inc: "exc", exc: "off" };
  var PICK_LABEL = { off: "·", inc: "+", exc: "−" };
  var PICK_WORD = { off: "off", inc: "included", exc: "excluded" };
  function pickExpression(form) {
    var inc = [], exc = [];
    $$("select[data-cat]", form).forEach(function (s) {
      if (s.value === "inc") inc.push(s.dataset.cat);
      else if (s.value === "exc") exc.push(s.dataset.cat);
    });
    return { inc: inc, exc: exc,
             text: inc.join("+") + exc.map(function (c) { return "-" + c; }).join("") };
  }
  function picker(form) {
    var preview = form.querySelector("[data-picker-preview]");
    function update() {
      var e = pickExpression(form);
      preview.hidden = false;
      preview.textContent = "";
      if (!e.inc.length) {
        preview.textContent = e.exc.length ? "Include at least one category." : "Click categories: once to include, twice to exclude.";
        return;
      }
      var a = el("a", { href: "/arxiv/" + e.text, "data-picker-link": "" }, "/arxiv/" + e.text);
      preview.appendChild(a);
    }
    $$("select[data-cat]", form).forEach(function (s) {
      // The button comes first inside the label, so clicking the category's name clicks it.
      var b = el("button", { type: "button", "class": "pk-state", "data-pick-state": "" });
      function show() {
        var v = PICK_LABEL[s.value] ? s.value : "off";
        b.textContent = PICK_LABEL[v];
        b.dataset.state = v;
        b.setAttribute("aria-label", s.dataset.cat + ": " + PICK_WORD[v] + " (click to change)");
        b.title = PICK_WORD[v] + " · click: " + PICK_WORD[PICK_NEXT[v]];
      }
      b.addEventListener("click", function (ev) {
        ev.preventDefault();
        s.value = PICK_NEXT[PICK_LABEL[s.value] ? s.value : "off"];
        show();
        update();
      });
      s.addEventListener("change", function () { show(); update(); });
      s.classList.add("ps-offscreen");
      s.tabIndex = -1;
      s.parentNode.insertBefore(b, s);
      show();
    });
    form.addEventListener("submit", function (ev) {
      var e = pickExpression(form);
      ev.preventDefault();
      if (e.inc.length) window.location.href = "/arxiv/" + e.text;
      else update();
    });
    update();
  }

  // --- saved searches on /search: named, in this browser, each with a stable feed URL ----
  var SAVED_KEY = "papershelf.savedSearches";
  var SEARCH_ORDER = ["q", "category", "from", "to", "sort", "mode"];
  function savedSearches() {
    var v = load(SAVED_KEY, []);
    return (Array.isArray(v) ? v : []).filter(function (s) {
      return s && typeof s.name === "string" && s.params && typeof s.params.q === "string";
    });
  }
  // Python's urlencode (quote_plus), so the browser builds the server's canonical URL.
  function formEncode(v) {
    return encodeURIComponent(v).replace(/[!'()*]/g, function (c) {
      return "%" + c.charCodeAt(0).toString(16).toUpperCase();
    }).replace(/%20/g, "+");
  }
  function query(pairs) {
    return pairs.map(function (p) { return p[0] + "=" + formEncode(p[1]); }).join("&");
  }
  function savedSearchUrl(p) {
    return "/search?" + query(SEARCH_ORDER.filter(function (k) { return p[k]; })
      .map(function (k) { return [k, p[k]]; }));
  }
  // The order and defaults of app.web.feeds.search_feed_path.
  function savedFeedUrl(p) {
    var pairs = [["q", p.q]];
    ["category", "from", "to"].forEach(function (k) { if (p[k]) pairs.push([k, p[k]]); });
    if (!p.crosslists) pairs.push(["crosslists", "0"]);
    if (p.replacements) pairs.push(["replacements", "1"]);
    if (p.mode) pairs.push(["mode", p.mode]);
    return "/search/feed?" + query(pairs);
  }
  function renderSaved(section) {
    var list = section.querySelector("[data-saved-list]");
    var all = savedSearches();
    list.textContent = "";
    section.querySelector("[data-saved-empty]").hidden = all.length > 0;
    all.forEach(function (s, i) {
      var li = el("li", { "data-saved": s.name });
      li.appendChild(el("a", { href: savedSearchUrl(s.params), "class": "saved-search" }, s.name));
      li.appendChild(document.createTextNode(" · "));
      li.appendChild(el("a", { href: s.feed || savedFeedUrl(s.params), "data-saved-feed": "" }, "feed"));
      li.appendChild(document.createTextNode(" "));
      var rm = el("button", { type: "button", "data-saved-remove": "", "aria-label": "Remove " + s.name }, "remove");
      rm.addEventListener("click", function () {
        var rest = savedSearches();
        rest.splice(i, 1);
        save(SAVED_KEY, rest);
        renderSaved(section);
      });
      li.appendChild(rm);
      list.appendChild(li);
    });
  }
  function savedSearchSection(section) {
    section.hidden = false;
    var form = section.querySelector("form[data-save-search]");
    if (form) form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var name = form.elements.name.value.trim().slice(0, 200);
      if (!name) return;
      var p = {};
      SEARCH_ORDER.forEach(function (k) { p[k] = section.dataset[k] || ""; });
      p.crosslists = form.elements.crosslists.checked;
      p.replacements = form.elements.replacements.checked;
      // A name saved again replaces the older search of that name.
      var all = savedSearches().filter(function (s) { return s.name !== name; });
      all.push({ name: name, params: p, feed: savedFeedUrl(p), saved_at: new Date().toISOString() });
      save(SAVED_KEY, all);
      renderSaved(section);
    });
    renderSaved(section);
  }

  // --- start --------------------------------------------------------------------------
  // Preference keywords (the listing's "keywords" sort) live in this browser: remembered
  // when applied, pre-filled on every listing, exported with the stars.
  function preferenceKeywords() {
    $$("form.sort").forEach(function (form) {
      var input = form.querySelector('input[name="kw"]');
      if (!input) return;
      if (!input.value) input.value = load(KEY.keywords, "");
      form.addEventListener("submit", function () { save(KEY.keywords, input.value.trim()); });
    });
  }

  // "Hide replacements" on a day listing: without JavaScript a link to ?replacements=hide;
  // here it hides the replacements section in place and is remembered for every listing.
  // An explicit ?replacements= in the address is the reader's choice and is remembered too.
  function replacementsToggle() {
    var link = document.querySelector("a[data-replacements-toggle]");
    if (!link) return;
    var section = document.querySelector("details.section#replace");
    var asked = new URLSearchParams(window.location.search).get("replacements");
    if (asked === "hide" || asked === "show") save(KEY.hideReplacements, asked === "hide");
    function set(hidden) {
      if (!section) return;
      section.hidden = hidden;
      link.dataset.replacementsToggle = hidden ? "show" : "hide";
      link.textContent = hidden ? "Show replacements" : "Hide replacements";
      document.documentElement.setAttribute("data-replacements", hidden ? "hidden" : "shown");
    }
    if (!asked && load(KEY.hideReplacements, false) === true) set(true);
    link.addEventListener("click", function (ev) {
      var hide = link.dataset.replacementsToggle === "hide";
      save(KEY.hideReplacements, hide);
      // A page the server rendered without them has nothing to show: follow the link.
      if (!section || asked === "hide") return;
      ev.preventDefault();
      set(hide);
    });
  }

  function init() {
    cards().forEach(enhanceCard);
    preferenceKeywords();
    replacementsToggle();
    $$("form.sort").forEach(forYou);
    if (cards().length) buildFilterBar();
    buildTools();
    var starred = document.querySelector("[data-starred]");
    if (starred) starredPage(starred);
    $$("form[data-picker]").forEach(picker);
    $$("section[data-saved-searches]").forEach(savedSearchSection);
    $$("section[data-faq][data-state]").forEach(faqPage);
    refreshMarks();
    document.addEventListener("keydown", onKey);
    // A card focused by a click or Tab becomes the current one for j/k/s/x/o.
    document.addEventListener("focusin", function (e) {
      if (!e.target.matches || !e.target.matches("article.paper[data-id]")) return;
      $$("article.paper.ps-current").forEach(function (c) { c.classList.remove("ps-current"); });
      e.target.classList.add("ps-current");
    });
    window.addEventListener("storage", function (e) {
      if (e.key === KEY.theme) applyTheme(theme());
      else refreshMarks();
    });
    document.documentElement.setAttribute("data-js", "ready");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
