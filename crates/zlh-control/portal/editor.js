// The file editor: CodeMirror 6 (vendored, see index.html's import map), with highlighting for
// what game servers keep (JSON, YAML, properties, TOML, shell scripts), search, undo, and a
// theme that matches the portal. Loaded only when a file is opened.

import { EditorState } from '@codemirror/state';
import { EditorView, drawSelection, highlightActiveLine, highlightSpecialChars, keymap, lineNumbers } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { HighlightStyle, StreamLanguage, bracketMatching, indentOnInput, syntaxHighlighting } from '@codemirror/language';
import { highlightSelectionMatches, search, searchKeymap } from '@codemirror/search';
import { json } from '@codemirror/lang-json';
import { yaml } from '@codemirror/lang-yaml';
import { tags } from '@lezer/highlight';
import { properties } from '@codemirror/legacy-modes/mode/properties';
import { toml } from '@codemirror/legacy-modes/mode/toml';
import { shell } from '@codemirror/legacy-modes/mode/shell';

/** The language of a file, by its name. */
function language(name) {
  const lower = name.toLowerCase();
  if (/\.(json|mcmeta)$/.test(lower)) return json();
  if (/\.(ya?ml)$/.test(lower)) return yaml();
  if (/\.(properties|cfg|conf|ini|env)$/.test(lower)) return StreamLanguage.define(properties);
  if (/\.toml$/.test(lower)) return StreamLanguage.define(toml);
  if (/\.(sh|bash)$/.test(lower) || lower === 'start' || lower === 'run') return StreamLanguage.define(shell);
  return [];
}

const colors = HighlightStyle.define([
  { tag: [tags.keyword, tags.operatorKeyword, tags.bool, tags.null], color: '#ff7b72' },
  { tag: [tags.string, tags.special(tags.string)], color: '#a5d6ff' },
  { tag: [tags.number, tags.atom], color: '#79c0ff' },
  { tag: [tags.propertyName, tags.definition(tags.propertyName), tags.attributeName], color: '#7ee787' },
  { tag: [tags.comment, tags.lineComment, tags.blockComment], color: '#8b949e', fontStyle: 'italic' },
  { tag: [tags.heading, tags.meta], color: '#d2a8ff' },
  { tag: tags.variableName, color: '#ffa657' },
  { tag: tags.invalid, color: '#ffa198' },
]);

const theme = EditorView.theme({
  '&': { backgroundColor: '#0d1117', color: '#e6edf3', border: '1px solid #30363d', borderRadius: '8px', fontSize: '14px' },
  '&.cm-focused': { outline: '2px solid #58a6ff' },
  '.cm-scroller': { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, monospace', minHeight: '320px', maxHeight: '70vh' },
  '.cm-gutters': { backgroundColor: '#161b22', color: '#8b949e', border: 'none' },
  '.cm-activeLine': { backgroundColor: '#161b2299' },
  '.cm-activeLineGutter': { backgroundColor: '#1f2630' },
  '&.cm-focused .cm-selectionBackground, .cm-selectionBackground': { backgroundColor: '#264f78' },
  '.cm-cursor': { borderLeftColor: '#e6edf3' },
  '.cm-panels': { backgroundColor: '#161b22', color: '#e6edf3' },
}, { dark: true });

/**
 * An editor of `text` in `parent`, named `label` for assistive technology; `value()` reads
 * the text back, `changed(text)` says whether it differs.
 */
export function codeEditor(parent, text, name, label) {
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: text,
      extensions: [
        lineNumbers(), highlightSpecialChars(), history(), drawSelection(), indentOnInput(),
        bracketMatching(), highlightActiveLine(), highlightSelectionMatches(), search({ top: true }),
        keymap.of([...defaultKeymap, ...historyKeymap, ...searchKeymap, indentWithTab]),
        language(name), syntaxHighlighting(colors), theme, EditorView.lineWrapping,
        EditorView.contentAttributes.of({ 'aria-label': label }),
      ],
    }),
  });
  return { value: () => view.state.doc.toString(), focus: () => view.focus() };
}
