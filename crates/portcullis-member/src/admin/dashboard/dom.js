// Portcullis dashboard: DOM helpers and number formatting, shared by app.js
// (loaded first). Plain JavaScript, nothing from elsewhere; text goes into
// the page with textContent or setAttribute only.
"use strict";

window.PortcullisDom = (function () {
  // ---- small DOM helpers -------------------------------------------------

  function el(tag, props) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null) continue;
        if (k === "text") node.textContent = String(v);
        else if (k === "className") node.className = v;
        else if (k === "testid") node.setAttribute("data-testid", v);
        else node.setAttribute(k, String(v));
      }
    }
    for (let i = 2; i < arguments.length; i++) {
      const child = arguments[i];
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function setText(node, text) {
    const value = text === null || text === undefined ? "" : String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function setAttr(node, name, value) {
    const v = String(value);
    if (node.getAttribute(name) !== v) node.setAttribute(name, v);
  }

  // Keeps the children of `parent` in the order of `items`, one element per
  // key, reusing existing elements so rows (and their buttons) stay in place
  // across refreshes.
  function sync(parent, items, keyOf, create, update) {
    const existing = new Map();
    for (const child of Array.from(parent.children)) {
      if (child.__key !== undefined) existing.set(child.__key, child);
    }
    let cursor = parent.firstElementChild;
    for (const item of items) {
      const key = keyOf(item);
      let node = existing.get(key);
      if (node) existing.delete(key);
      else {
        node = create(item);
        node.__key = key;
      }
      update(node, item);
      if (node !== cursor) parent.insertBefore(node, cursor);
      else cursor = cursor.nextElementSibling;
    }
    for (const stale of existing.values()) stale.remove();
  }

  function safeUrl(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
  }

  function link(url) {
    const href = safeUrl(url);
    if (!href) return el("span", { text: url || "–" });
    return el("a", { href: href, target: "_blank", rel: "noopener noreferrer", text: url });
  }

  // ---- formatting -----------------------------------------------------------

  function fmtInt(n) {
    return typeof n === "number" && isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
  }

  function fmtRate(r) {
    if (r === null || r === undefined) return "–";
    if (r === 0) return "0";
    if (r < 10) return r.toFixed(1);
    return Math.round(r).toLocaleString("en-US");
  }

  function fmtPct(p) {
    if (p === null || p === undefined) return "–";
    if (p === 0) return "0 %";
    if (p < 0.1) return "<0.1 %";
    return (p < 10 ? p.toFixed(1) : Math.round(p)) + " %";
  }

  function fmtSeconds(s) {
    if (s < 1) {
      const ms = s * 1000;
      return (ms < 1 ? ms.toFixed(1) : String(Math.round(ms * 10) / 10)) + " ms";
    }
    return String(s) + " s";
  }

  function fmtP99(p) {
    if (!p) return "–";
    return p.above ? "> " + fmtSeconds(p.bound) : "≤ " + fmtSeconds(p.bound);
  }

  function fmtAge(ms) {
    if (typeof ms !== "number" || !isFinite(ms)) return "–";
    if (ms < 10000) return (ms / 1000).toFixed(1) + " s ago";
    if (ms < 120000) return Math.round(ms / 1000) + " s ago";
    if (ms < 7200000) return Math.round(ms / 60000) + " min ago";
    return Math.round(ms / 3600000) + " h ago";
  }

  function fmtClock(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  return Object.freeze({ el, svg, setText, setAttr, sync, safeUrl, link, fmtInt, fmtRate, fmtPct, fmtSeconds, fmtP99, fmtAge, fmtClock });
})();
