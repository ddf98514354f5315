// MathJax for pymdownx.arithmatex (generic mode: \( \) and \[ \] inside .arithmatex) and for the
// tutorials' markdown cells (mkdocs-jupyter: $ $ and $$ $$ in the text blocks of .jp-MarkdownOutput,
// marked "arithmatex" below: MathJax ignores every element without that class, code included). The
// MathJax script itself loads from a CDN at view time; the build needs no network.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex"
  }
};

const NOTEBOOK_TEXT = ["p", "li", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "em", "strong"]
  .map((tag) => `.jp-MarkdownOutput ${tag}`).join(", ");

document$.subscribe(() => {
  document.querySelectorAll(NOTEBOOK_TEXT).forEach((element) => element.classList.add("arithmatex"));
  if (window.MathJax && MathJax.typesetPromise) {
    MathJax.startup.output.clearCache();
    MathJax.typesetClear();
    MathJax.texReset();
    MathJax.typesetPromise();
  }
});
