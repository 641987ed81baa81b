"""The look (CSS) and the little script the page needs (presentation keys). No text from the essays here."""

CSS = """
.gradio-container { max-width: 1180px !important; margin: 0 auto; }
#coach-header h1 { margin: 0; font-size: 1.5rem; }
#coach-header p { margin: 0.2rem 0 0; color: #555; }
.coach-q { white-space: pre-wrap; }
.coach-card { background: #fffdf7; color: #1f2328; border: 1px solid #eadfc8; border-radius: 12px;
  padding: 14px 16px; line-height: 1.6; }
.coach-situation { font-weight: 600; margin-bottom: 8px; }
.coach-tag { display: inline-block; background: #1e3a5f; color: #fff; border-radius: 999px; padding: 1px 10px;
  font-size: 0.78rem; font-weight: 600; margin-right: 6px; vertical-align: 1px; }
.coach-followup, .coach-muted, .coach-section { color: #6b6b6b; font-weight: 400; font-size: 0.9em; }
.coach-list { list-style: none; padding: 0; margin: 0; }
.coach-advice { border-left: 4px solid #e3a008; padding: 6px 0 6px 12px; margin: 10px 0; }
.coach-key { font-size: 1.08rem; font-weight: 600; }
.coach-n { display: inline-block; min-width: 1.4em; height: 1.4em; line-height: 1.4em; text-align: center;
  border-radius: 50%; background: #e3a008; color: #fff; font-size: 0.8rem; margin-right: 6px; }
mark.coach-mark { background: #fde68a; color: #1f2328; padding: 0 2px; border-radius: 3px; }
.coach-say { margin: 6px 0; padding: 6px 10px; background: #ecfdf5; border-radius: 8px; color: #064e3b; }
.coach-say-remember { background: #eef2ff; color: #1e1b4b; }
.coach-say-label { font-weight: 700; font-size: 0.8rem; text-transform: uppercase; letter-spacing: .03em;
  margin-right: 4px; }
.coach-details summary { cursor: pointer; color: #1e3a5f; font-size: 0.9rem; }
.coach-passage { margin: 6px 0; color: #333; white-space: normal; }
.coach-who { color: #555; font-size: 0.88rem; margin-top: 4px; }
.coach-author { font-weight: 600; color: #333; }
.coach-note { background: #fff4e5; color: #7a4100; border-radius: 8px; padding: 4px 8px; margin-bottom: 8px; }
.coach-ood { border-color: #cbd5e1; background: #f8fafc; }
.coach-ood-title { font-weight: 700; font-size: 1.08rem; }
.coach-topics { color: #1e3a5f; }
.coach-why table, .coach-table, .coach-meta { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
.coach-why td, .coach-why th, .coach-table td, .coach-table th, .coach-meta td, .coach-meta th {
  border-bottom: 1px solid #e5e7eb; padding: 4px 6px; text-align: left; vertical-align: top; }
.coach-essay { background: #fff; color: #1f2328; padding: 12px 16px; border-radius: 12px; border: 1px solid #e5e7eb; }
.coach-essay-text { line-height: 1.8; margin-top: 12px; }
.coach-passage-mark { background: #fef9c3; }
.coach-cols { display: flex; gap: 12px; flex-wrap: wrap; margin: 10px 0; }
.coach-col { flex: 1 1 260px; min-width: 0; }
.coach-discuss { background: #eef2ff; color: #1e1b4b; padding: 10px 14px; border-radius: 10px; font-size: 1.05rem; }
.coach-present-q { font-size: 1.1rem; color: #444; margin: 4px 0 10px; }
.coach-present { font-size: 1.75rem; line-height: 1.5; background: #fffdf7; color: #1f2328; padding: 24px 32px;
  border-radius: 16px; border: 1px solid #eadfc8; }
.coach-present .coach-key { font-size: clamp(1.5rem, 3.2vw, 2.3rem); }
.coach-present .coach-who { font-size: 1.2rem; }
#coach-chat .message { max-width: 100% !important; }
.coach-card, .coach-present, .coach-essay, .coach-gallery { overflow-wrap: anywhere; word-break: break-word; }
.coach-scroll { max-width: 100%; overflow-x: auto; }

.coach-why code { word-break: break-all; }
.coach-short { margin: 6px 0; padding: 6px 10px; background: #f1f5f9; border-radius: 8px; color: #1f2937; }
.coach-small-talk p { margin: 0; }
/* presentation mode: the Present tab's column fills the window, one card in large type, controls at the bottom */
body.coach-presenting #coach-present-wrap { position: fixed; inset: 0; z-index: 2000; margin: 0; max-width: none;
  background: #fffdf7; padding: 16px 24px; display: flex; flex-direction: column; gap: 8px; overflow: hidden; }
body.coach-presenting #coach-present { flex: 1 1 auto; overflow: auto !important; min-height: 0; }
body.coach-presenting #coach-present .coach-present { border: none; min-height: 100%; }
body.coach-presenting #coach-present-controls { flex: 0 0 auto; background: #fffdf7; }
body.coach-presenting #coach-p-full { display: none; }
body:not(.coach-presenting) #coach-p-exit { display: none; }
.coach-present-keys { font-size: 0.9rem; }
@media (max-width: 640px) {
  #coach-top { flex-direction: column; align-items: stretch; }
  #coach-top > * { width: 100%; min-width: 0 !important; }
  #coach-ask-row { flex-wrap: wrap; }
  .coach-present { font-size: 1.2rem; padding: 12px 14px; }
  .coach-present .coach-key { font-size: 1.5rem; }
  body.coach-presenting #coach-present-wrap { padding: 8px; }
  #coach-header h1 { font-size: 1.25rem; }
  #coach-header p { font-size: 0.85rem; }
  /* every tab fits on a phone's line (Gradio moves tabs that do not fit behind "…"); see PAGE_CSS too */
  #coach-tabs button[role="tab"], #coach-tabs .tab-container button { padding: 4px 5px !important; font-size: 0.78rem !important; min-width: 0; }
}
"""

# Presentation keys: while the Present tab fills the window, → and ← move between cards (they click the Next and
# Previous buttons, so the server keeps the position) and Esc leaves the full window. Typing in a field is left alone.
# Rules for the page around the app, which Gradio's `css` cannot reach (it scopes every rule to the app's content):
# the container takes the window's width (its auto margins would otherwise size it to its content, wider than a
# phone) and a phone keeps its width for the content instead of wide side padding.
PAGE_CSS = """<style>
.gradio-container { width: 100% !important; min-width: 0 !important; }
.gradio-container > .main, .gradio-container .wrap, .gradio-container main.contain { min-width: 0 !important; }
@media (max-width: 640px) { .gradio-container > .main.app { padding-left: 8px !important; padding-right: 8px !important; } }
</style>"""
HEAD = (
    PAGE_CSS
    + """<script>
document.addEventListener("keydown", (e) => {
  if (!document.body.classList.contains("coach-presenting")) return;
  const t = e.target;
  if (t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT" || t.isContentEditable)) return;
  const click = (id) => { const b = document.getElementById(id); if (b) b.click(); };
  if (e.key === "ArrowRight") { click("coach-p-next"); e.preventDefault(); }
  else if (e.key === "ArrowLeft") { click("coach-p-prev"); e.preventDefault(); }
  else if (e.key === "Escape") { document.body.classList.remove("coach-presenting"); e.preventDefault(); }
});
</script>"""
)
ENTER_PRESENTATION = "() => { document.body.classList.add('coach-presenting'); }"
LEAVE_PRESENTATION = "() => { document.body.classList.remove('coach-presenting'); }"
