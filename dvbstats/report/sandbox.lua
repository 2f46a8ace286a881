--[[
What a report may carry, enforced on the document Pandoc read (the pandoc engine runs it first).

Pandoc renders reports with --sandbox: it reads no file but its input, so no name, path or section
text can make it inline a local file. This filter hands it the report's own resources and nothing
else, and keeps only markup a report needs:

- Images: only `figures/<name>.png` of the report folder (read here and given to Pandoc's media
  bag, which --embed-resources inlines); any other image is replaced by its description.
- Links: only in-page (`#id`), http(s), mailto and relative ones; others (`javascript:`,
  `data:`, `file:` ...) keep their text and lose the link.
- Attributes: only the keys the report uses (`fig-alt`, a callout's `title`, `width`, `height`);
  event handlers, `style`, `src`, `href` and the rest are dropped.
- Raw HTML, LaTeX or other raw content (read only from `{=format}` blocks; the reader has raw HTML
  off) is dropped.
- Metadata: only `title`, `subtitle`, `date` and `lang` (a YAML block inside a section cannot add
  header includes, style sheets or scripts); the report's style sheet `report.css` becomes the
  one header include.
]]

local KEYS = { ["fig-alt"] = true, title = true, width = true, height = true }
local META = { title = true, subtitle = true, date = true, lang = true }
local FIGURE = "^figures/[%w][%w_%-%.]*%.png$"
local CSS = "report.css"

local function read(path)
  local fh = io.open(path, "rb")
  if not fh then
    return nil
  end
  local data = fh:read("a")
  fh:close()
  return data
end

local function clean(el)
  if el.attr then
    local kept = {}
    for k, v in pairs(el.attributes) do
      if KEYS[k] then
        kept[k] = v
      end
    end
    el.attributes = kept
  end
  return el
end

local function image(img)
  if img.src:match(FIGURE) and not img.src:find("..", 1, true) then
    local data = read(img.src)
    if data then
      pandoc.mediabag.insert(img.src, "image/png", data)
      return img
    end
  end
  io.stderr:write("WARNING: image " .. img.src .. " is not a figure of the report; shown as text\n")
  return pandoc.Span(img.caption)
end

local function link(el)
  local target = el.target:gsub("[%c%s]", "") -- browsers ignore tabs and line breaks in a URL
  local scheme = target:match("^(%a[%w+.%-]*):")
  if target:sub(1, 1) == "#" or not scheme then
    return el
  end
  scheme = scheme:lower()
  if scheme == "http" or scheme == "https" or scheme == "mailto" then
    return el
  end
  return pandoc.Span(el.content)
end

local function meta(m)
  for k, _ in pairs(m) do
    if not META[k] then
      m[k] = nil
    end
  end
  local css = read(CSS)
  if css then -- in place of --css, which the sandbox cannot read: the same style, without Pandoc's own
    m["header-includes"] = pandoc.MetaBlocks({ pandoc.RawBlock("html", "<style>\n" .. css .. "\n</style>") })
    m["document-css"] = false
  end
  return m
end

return {
  {
    Inline = clean,
    Block = clean,
    RawInline = function() return {} end,
    RawBlock = function() return {} end,
  },
  { Image = image, Link = link },
  { Meta = meta },
}
