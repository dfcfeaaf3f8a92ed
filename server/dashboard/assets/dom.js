/*
 * The dashboard's DOM helpers: elements and SVG made from a tag, attributes and children. Text
 * is always appended as text, never parsed as HTML.
 */

const SVGNS = "http://www.w3.org/2000/svg";

/* el("p", {class: "x", "data-field": "udid"}, "text", child, ...): an element. Attributes
 * that are null, undefined or false are left out; true makes an empty attribute. */
export function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
}

export function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
}

function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
        if (value === null || value === undefined || value === false) continue;
        node.setAttribute(name, value === true ? "" : String(value));
    }
}

function append(node, children) {
    for (const child of children.flat(Infinity)) {
        if (child === null || child === undefined || child === false) continue;
        node.append(child instanceof Node ? child : String(child));
    }
}

export function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
}

export function $(selector, root) {
    return (root || document).querySelector(selector);
}
