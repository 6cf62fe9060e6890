// Rich text: the facets of a new post (mentions and links, with UTF-8 byte offsets as the
// lexicon asks), and a post's text rendered with its facets as links.

import { webLink } from "./dom.js";

const MENTION = /(^|[\s(])@([a-zA-Z0-9][a-zA-Z0-9.-]*[a-zA-Z0-9])/g;
const LINK = /(^|[\s(])(https?:\/\/[^\s)]+[^\s).,;:!?'"])/g;
const encoder = new TextEncoder();

function byteOffset(text, index) {
  return encoder.encode(text.slice(0, index)).length;
}

// Graphemes, as the lexicon counts a post's length (300 at most).
export function graphemes(text) {
  if (typeof Intl !== "undefined" && Intl.Segmenter) {
    return [...new Intl.Segmenter().segment(text)].length;
  }
  return [...text].length;
}

// Facets of `text`; `resolve(handle)` gives a DID or null.
export async function detectFacets(text, resolve) {
  const facets = [];
  for (const match of text.matchAll(MENTION)) {
    const start = match.index + match[1].length;
    const end = start + 1 + match[2].length;
    const did = await resolve(match[2].toLowerCase());
    if (did) {
      facets.push({
        index: { byteStart: byteOffset(text, start), byteEnd: byteOffset(text, end) },
        features: [{ $type: "app.bsky.richtext.facet#mention", did }],
      });
    }
  }
  for (const match of text.matchAll(LINK)) {
    const start = match.index + match[1].length;
    const end = start + match[2].length;
    facets.push({
      index: { byteStart: byteOffset(text, start), byteEnd: byteOffset(text, end) },
      features: [{ $type: "app.bsky.richtext.facet#link", uri: match[2] }],
    });
  }
  return facets.sort((a, b) => a.index.byteStart - b.index.byteStart);
}

// `text` as DOM nodes, its facets made links (mentions to profiles, links to their pages).
export function renderText(text, facets) {
  const bytes = encoder.encode(text);
  const decoder = new TextDecoder();
  const out = document.createDocumentFragment();
  let at = 0;
  const sorted = [...(facets || [])].sort((a, b) => a.index.byteStart - b.index.byteStart);
  for (const facet of sorted) {
    const { byteStart, byteEnd } = facet.index;
    if (byteStart < at || byteEnd > bytes.length || byteEnd <= byteStart) continue;
    const feature = (facet.features || [])[0] || {};
    let href = null;
    if (feature.$type === "app.bsky.richtext.facet#mention") href = `#/profile/${feature.did}`;
    else if (feature.$type === "app.bsky.richtext.facet#link") href = webLink(feature.uri);
    else if (feature.$type === "app.bsky.richtext.facet#tag") href = null;
    if (!href) continue;
    out.append(decoder.decode(bytes.slice(at, byteStart)));
    const link = document.createElement("a");
    link.href = href;
    link.textContent = decoder.decode(bytes.slice(byteStart, byteEnd));
    if (!href.startsWith("#")) {
      link.rel = "noopener noreferrer";
      link.target = "_blank";
    }
    out.append(link);
    at = byteEnd;
  }
  out.append(decoder.decode(bytes.slice(at)));
  return out;
}
