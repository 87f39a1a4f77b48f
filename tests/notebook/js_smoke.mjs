// Render a widget module against a small fake DOM and a fake model, in node, so a typo in a
// render path (an undefined name, a missing helper) fails a fast test instead of only the
// browser test. Usage: node js_smoke.mjs WIDGET_MODULE.mjs STATE.json
// Prints one JSON line: {"text": <the rendered text>, "sent": [...], "handlers": [...]}.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

class FakeNode {
  constructor(tag) {
    this.tagName = String(tag || "").toUpperCase();
    this.childNodes = [];
    this.parentNode = null;
    this.attributes = {};
    this.dataset = {};
    this.listeners = {};
    this.hidden = false;
    this.disabled = false;
    this.value = "";
    this.scrollTop = 0;
    this.scrollHeight = 100;
    this.clientHeight = 50;
    this._text = "";
    this._classes = new Set();
    const self = this;
    this.classList = {
      add: (...c) => c.forEach((x) => self._classes.add(x)),
      remove: (...c) => c.forEach((x) => self._classes.delete(x)),
      toggle: (c, on) => ((on ?? !self._classes.has(c)) ? self._classes.add(c) : self._classes.delete(c)),
      contains: (c) => self._classes.has(c),
    };
  }
  get className() {
    return [...this._classes].join(" ");
  }
  set className(v) {
    this._classes = new Set(String(v).split(/\s+/).filter(Boolean));
  }
  get children() {
    return this.childNodes.filter((n) => n instanceof FakeNode && n.tagName !== "#TEXT");
  }
  get firstChild() {
    return this.childNodes[0] || null;
  }
  get nextSibling() {
    if (!this.parentNode) return null;
    const i = this.parentNode.childNodes.indexOf(this);
    return this.parentNode.childNodes[i + 1] || null;
  }
  get textContent() {
    if (this.tagName === "#TEXT") return this._text;
    return this._text + this.childNodes.map((n) => n.textContent).join("");
  }
  set textContent(v) {
    this.childNodes = [];
    this._text = String(v ?? "");
  }
  set innerHTML(v) {
    this.childNodes = [];
    this._text = String(v ?? "").replace(/<[^>]*>/g, "");
  }
  get innerHTML() {
    return this._text;
  }
  _adopt(node) {
    if (node.tagName === "#FRAGMENT") return node.childNodes.splice(0).map((n) => this._adopt(n)).flat();
    if (node.parentNode) node.remove();
    node.parentNode = this;
    return [node];
  }
  append(...nodes) {
    for (const n of nodes) {
      const node = n instanceof FakeNode ? n : document.createTextNode(String(n));
      this.childNodes.push(...this._adopt(node));
    }
  }
  appendChild(n) {
    this.append(n);
    return n;
  }
  insertBefore(node, ref) {
    const adopted = this._adopt(node);
    const i = ref ? this.childNodes.indexOf(ref) : -1;
    if (i < 0) this.childNodes.push(...adopted);
    else this.childNodes.splice(i, 0, ...adopted);
    return node;
  }
  remove() {
    if (!this.parentNode) return;
    const list = this.parentNode.childNodes;
    list.splice(list.indexOf(this), 1);
    this.parentNode = null;
  }
  replaceChildren(...nodes) {
    for (const n of this.childNodes) n.parentNode = null;
    this.childNodes = [];
    this._text = "";
    this.append(...nodes);
  }
  setAttribute(k, v) {
    this.attributes[k] = String(v);
  }
  getAttribute(k) {
    return this.attributes[k] ?? null;
  }
  removeAttribute(k) {
    delete this.attributes[k];
  }
  addEventListener(type, fn) {
    (this.listeners[type] ||= []).push(fn);
  }
  removeEventListener(type, fn) {
    this.listeners[type] = (this.listeners[type] || []).filter((f) => f !== fn);
  }
  focus() {}
  contains(node) {
    for (let n = node; n; n = n.parentNode) if (n === this) return true;
    return false;
  }
  _matches(sel) {
    return sel.split(",").some((part) => {
      const s = part.trim();
      if (s.startsWith(".")) return this._classes.has(s.slice(1));
      if (s.startsWith("[")) {
        const key = s.slice(1, -1).replace(/^data-/, "");
        const camel = key.replace(/-(\w)/g, (_, c) => c.toUpperCase());
        return camel in this.dataset || key in this.attributes;
      }
      return this.tagName === s.toUpperCase();
    });
  }
  closest(sel) {
    for (let n = this; n; n = n.parentNode) if (n._matches && n._matches(sel)) return n;
    return null;
  }
  querySelectorAll(sel) {
    const out = [];
    const walk = (n) => {
      for (const c of n.children) {
        if (c._matches(sel)) out.push(c);
        walk(c);
      }
    };
    walk(this);
    return out;
  }
  querySelector(sel) {
    return this.querySelectorAll(sel)[0] || null;
  }
}

class TextNode extends FakeNode {
  constructor(text) {
    super("#text");
    this._text = text;
  }
}

globalThis.Node = FakeNode;
globalThis.document = {
  createElement: (t) => new FakeNode(t),
  createTextNode: (t) => new TextNode(t),
  createDocumentFragment: () => new FakeNode("#fragment"),
};
globalThis.requestAnimationFrame = (fn) => setTimeout(fn, 0);

const [modulePath, statePath] = process.argv.slice(2);
const state = JSON.parse(readFileSync(statePath, "utf8"));
const handlers = {};
const sent = [];
const model = {
  get: (k) => state[k],
  set: (k, v) => {
    state[k] = v;
  },
  save_changes: () => {},
  send: (msg) => sent.push(msg),
  on: (name, fn) => {
    (handlers[name] ||= []).push(fn);
  },
  off: () => {},
  widget_manager: undefined,
};
const el = new FakeNode("div");
const widget = (await import(pathToFileURL(modulePath).href)).default;
const cleanup = widget.render({ model, el });
for (const [name, fns] of Object.entries(handlers)) for (const fn of fns) fn();
// Click every enabled button once (actions are recorded, acknowledgements never come).
const clickAll = (node) => {
  for (const b of node.querySelectorAll("button")) {
    if (b.disabled) continue;
    for (const fn of b.listeners.click || []) fn({ currentTarget: b, preventDefault() {} });
  }
};
clickAll(el);
// The workspace stops answering: the view greys out and says so.
state.connection = { state: "lost", message: "The workspace service does not answer." };
for (const fn of handlers["change:connection"] || []) fn();
const dead = el.querySelectorAll(".stg-dead").length > 0;
const text = el.textContent;
if (typeof cleanup === "function") cleanup();
console.log(JSON.stringify({ text, sent, handlers: Object.keys(handlers), dead }));
process.exit(0);
