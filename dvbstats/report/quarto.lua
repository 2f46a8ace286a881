--[[
Quarto constructs for plain Pandoc (used when the quarto CLI is not installed).

- Callouts: `::: {.callout-KIND}` with an optional first `##` heading (or a `title`
  attribute) become `<div class="callout callout-KIND">` with a `callout-title` div, the
  heading removed from the outline as Quarto does. KIND: note, tip, warning, caution, important.
- Cross-references: figures `{#fig-x}` and tables `{#tbl-x}` are numbered in document
  order and their captions prefixed ("Figure 1: ..."); `@fig-x`, `@tbl-x` and `@sec-x`
  (a heading `{#sec-x}`, numbered like --number-sections does) become links "Figure 1",
  "Table 2", "Section 3". A reference to an unknown id is left as "?@id" with a warning,
  as Quarto does.
]]

local KINDS = { note = "Note", tip = "Tip", warning = "Warning", caution = "Caution", important = "Important" }
local PREFIX = { fig = "Figure", tbl = "Table", sec = "Section" }
local numbers = {}

local function callout_kind(div)
  for _, class in ipairs(div.classes) do
    local kind = class:match("^callout%-(%a+)$")
    if kind and KINDS[kind] then
      return kind
    end
  end
end

local function callout(div)
  local kind = callout_kind(div)
  if not kind then
    return nil
  end
  local title = div.attributes.title and pandoc.Inlines(div.attributes.title) or nil
  local body = div.content
  if not title and #body > 0 and body[1].t == "Header" then
    title = body[1].content
    body = pandoc.Blocks({ table.unpack(body, 2) })
  end
  title = title or pandoc.Inlines(KINDS[kind])
  local head = pandoc.Div(pandoc.Plain(title), pandoc.Attr("", { "callout-title" }))
  local inner = pandoc.Div(body, pandoc.Attr("", { "callout-body" }))
  return pandoc.Div({ head, inner }, pandoc.Attr(div.identifier, { "callout", "callout-" .. kind }))
end

local function prefix_caption(caption, label)
  local lead = pandoc.Inlines({ pandoc.Strong(label .. ":"), pandoc.Space() })
  if #caption.long == 0 then
    caption.long = pandoc.Blocks({ pandoc.Plain(lead) })
  else
    local first = caption.long[1]
    first.content = lead .. first.content
  end
  return caption
end

local counts = { fig = 0, tbl = 0 }
local function number(el, kind)
  if el.identifier:match("^" .. kind .. "%-") then
    counts[kind] = counts[kind] + 1
    local label = PREFIX[kind] .. " " .. counts[kind]
    numbers[el.identifier] = label
    el.caption = prefix_caption(el.caption, label)
    return el
  end
end

-- Section numbers as pandoc's --number-sections assigns them (unnumbered headings skipped).
local levels = {}
local function number_header(h)
  if h.classes:includes("unnumbered") then
    return nil
  end
  levels[h.level] = (levels[h.level] or 0) + 1
  for l = h.level + 1, 6 do
    levels[l] = nil
  end
  if h.identifier:match("^sec%-") then
    local parts = {}
    for l = 1, h.level do
      table.insert(parts, tostring(levels[l] or 0))
    end
    numbers[h.identifier] = PREFIX.sec .. " " .. table.concat(parts, ".")
  end
end

local function resolve(cite)
  local out = pandoc.Inlines({})
  for i, c in ipairs(cite.citations) do
    local kind = c.id:match("^(%a+)%-")
    if not (kind and PREFIX[kind]) then
      return nil -- a real citation: leave it alone
    end
    if i > 1 then
      out:insert(pandoc.Str(", "))
    end
    local label = numbers[c.id]
    if label then
      out:insert(pandoc.Link(label, "#" .. c.id, "", pandoc.Attr("", { "quarto-xref" })))
    else
      io.stderr:write("WARNING: unresolved cross-reference @" .. c.id .. "\n")
      out:insert(pandoc.Strong(pandoc.Str("?@" .. c.id)))
    end
  end
  return out
end

return {
  { Div = callout },
  {
    traverse = "topdown",
    Header = number_header,
    Figure = function(el) return number(el, "fig") end,
    Table = function(el) return number(el, "tbl") end,
  },
  { Cite = resolve },
}
