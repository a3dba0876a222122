/* The block email editor: GrapesJS with its MJML plugin, configured to load nothing from other hosts.
 *
 * The editor only edits. On submit the MJML goes into the form's hidden `mjml` field; the server
 * renders it with mrml and saves it through the template service (lint, sandbox, versions). The
 * compliance footer shown at the end is a locked placeholder: the server drops it and appends the
 * real footer to every message.
 */
(function () {
  "use strict";

  var FOOTER_CLASS = "hm-compliance-footer";
  var container = document.getElementById("gjs");
  if (!container || !window.grapesjs) { return; }

  function jsonFrom(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : "";
  }

  function escapeText(value) {
    var div = document.createElement("div");
    div.textContent = value;
    return div.innerHTML;
  }

  // A grey placeholder image as a data: URL, so the image block never asks another host.
  var IMAGE_PLACEHOLDER = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" width="600" height="200"><rect width="600" height="200" fill="#d0d7de"/></svg>'
  );
  var FONT = 'font-family="Arial, Helvetica, sans-serif"';

  var SECTIONS = {
    "hm-header": ["Header",
      '<mj-section background-color="#1d4e89"><mj-column><mj-text ' + FONT +
      ' color="#ffffff" font-size="22px" font-weight="bold">{{ organization.name }}</mj-text></mj-column></mj-section>'],
    "hm-text": ["Text",
      '<mj-section><mj-column><mj-text ' + FONT + ' font-size="16px" line-height="24px">Write your message here.</mj-text></mj-column></mj-section>'],
    "hm-image": ["Image",
      '<mj-section><mj-column><mj-image src="' + IMAGE_PLACEHOLDER + '" alt="Describe the image"></mj-image></mj-column></mj-section>'],
    "hm-button": ["Button",
      '<mj-section><mj-column><mj-button ' + FONT + ' background-color="#1d4e89" href="https://example.org/">Book a visit</mj-button></mj-column></mj-section>'],
    "hm-columns": ["Two columns",
      '<mj-section><mj-column><mj-text ' + FONT + '>Left column</mj-text></mj-column>' +
      '<mj-column><mj-text ' + FONT + '>Right column</mj-text></mj-column></mj-section>'],
    "hm-divider": ["Divider",
      '<mj-section><mj-column><mj-divider border-width="1px" border-color="#d0d7de"></mj-divider></mj-column></mj-section>'],
    "hm-footer": ["Footer",
      '<mj-section><mj-column><mj-text ' + FONT + ' font-size="12px" color="#555555">A closing line, e.g. your opening hours.</mj-text></mj-column></mj-section>']
  };

  function footerPlaceholder(text) {
    return '<mj-section css-class="' + FOOTER_CLASS + '" background-color="#f4f6f8"><mj-column><mj-text ' + FONT +
      ' font-size="12px" color="#555555">' + escapeText(text) + "</mj-text></mj-column></mj-section>";
  }

  var footerText = jsonFrom(container.dataset.footerSource) || "Legal footer";
  var source = jsonFrom(container.dataset.mjmlSource) ||
    "<mjml><mj-body>" + SECTIONS["hm-header"][1] + SECTIONS["hm-text"][1] + "</mj-body></mjml>";
  // The stored MJML never holds the placeholder (the server drops it): add it back at the end.
  source = source.replace(/<\/mj-body>/i, footerPlaceholder(footerText) + "</mj-body>");

  var mjmlPlugin = window["grapesjs-mjml"];
  mjmlPlugin = mjmlPlugin && mjmlPlugin.default ? mjmlPlugin.default : mjmlPlugin;
  var editor = window.grapesjs.init({
    container: container,
    height: "640px",
    fromElement: false,
    components: source,
    storageManager: false,
    // GrapesJS would ask "leave the page?" on every navigation (locking the footer counts as a
    // change), the test send included; saving is explicit here.
    noticeOnUnload: false,
    telemetry: false,        // GrapesJS would report to app.grapesjs.com
    cssIcons: "",            // and load Font Awesome from cdnjs
    assetManager: { assets: [], upload: false, embedAsBase64: false },
    canvas: { styles: [], scripts: [] },
    plugins: [function (instance) {
      // No web fonts (mjml-browser would link Google Fonts) and a local image placeholder.
      return mjmlPlugin(instance, { fonts: {}, imagePlaceholderSrc: IMAGE_PLACEHOLDER, resetBlocks: true });
    }],
  });

  var blocks = editor.BlockManager;
  blocks.getAll().reset();
  Object.keys(SECTIONS).forEach(function (id) {
    blocks.add(id, {
      label: SECTIONS[id][0],
      category: "Sections",
      content: SECTIONS[id][1],
      attributes: { "data-block-id": id, title: "Drag into the email, or press to add at the end", tabindex: "0", role: "button" },
    });
  });

  // Dragging is not the only way in: a click or Enter on a section adds it before the legal footer
  // (keyboard users cannot drag).
  function appendSection(id) {
    var body = editor.getWrapper().findType("mj-body")[0];
    if (!body) { return; }
    var footer = footerComponents()[0];
    var at = footer ? body.components().indexOf(footer) : body.components().length;
    var added = body.components().add(SECTIONS[id][1], { at: at });
    editor.select(Array.isArray(added) ? added[0] : added);
  }

  function blockActivated(event) {
    var element = event.target.closest("[data-block-id]");
    if (!element || (event.type === "keydown" && event.key !== "Enter" && event.key !== " ")) { return; }
    event.preventDefault();
    appendSection(element.dataset.blockId);
  }
  container.addEventListener("click", blockActivated);
  container.addEventListener("keydown", blockActivated);

  var LOCKED = { removable: false, draggable: false, copyable: false, droppable: false, editable: false, hoverable: false };

  function isFooter(component) {
    var classes = (component.getAttributes()["css-class"] || "").split(/\s+/);
    return classes.indexOf(FOOTER_CLASS) !== -1;
  }

  function footerComponents() {
    return editor.getWrapper().findType("mj-section").filter(isFooter);
  }

  function lockFooter() {
    footerComponents().forEach(function (section) {
      (function lock(component) {
        component.set(LOCKED);
        component.components().forEach(lock);
      }(section));
      var parent = section.parent();
      if (parent && parent.components().last() !== section) {
        parent.components().remove(section, { temporary: true });
        parent.components().add(section);  // the legal footer always closes the email
      }
    });
  }
  // Panel buttons use Font Awesome icon classes, which we do not load (cssIcons: ""): give them words.
  var BUTTON_LABELS = {
    "sw-visibility": "Outlines", "preview": "Preview", "fullscreen": "Full screen",
    "export-template": "Code", "open-sm": "Style", "open-layers": "Layers",
    "open-blocks": "Sections", "open-tm": "Settings"
  };

  function labelButtons() {
    editor.Panels.getPanels().forEach(function (panel) {
      panel.get("buttons").forEach(function (button) {
        var label = BUTTON_LABELS[button.id];
        if (label && String(button.get("className") || "").indexOf("fa") !== -1) {
          button.set({ className: "hm-panel-button", label: label, attributes: { title: label } });
        }
      });
    });
  }

  // The canvas is an iframe: give it, and any frame GrapesJS adds later, a name screen readers
  // announce (WCAG 4.1.2, axe frame-title). Watching the container names it before anyone looks.
  function nameFrames() {
    container.querySelectorAll("iframe:not([title])").forEach(function (frame) {
      frame.setAttribute("title", "Email being designed");
    });
  }
  new MutationObserver(nameFrames).observe(container, { childList: true, subtree: true });
  nameFrames();

  editor.on("load", function () {
    labelButtons();
    lockFooter();
    editor.runCommand("open-blocks");
    var open = editor.Panels.getButton("views", "open-blocks");
    if (open) { open.set("active", true); }
  });
  editor.on("component:add", function (component) {
    if (!isFooter(component)) { window.setTimeout(lockFooter, 0); }
  });

  // --- Merge fields: inserted at the cursor of the text being edited -------------------------------
  var status = document.getElementById("merge-status");
  document.querySelectorAll("[data-merge-field]").forEach(function (button) {
    // Inserted on mousedown: by the time a click completes, GrapesJS has ended the text editing and
    // the cursor is gone. Keyboard presses (a click with detail 0) take the same path.
    button.addEventListener("mousedown", function (event) {
      if (event.button === 0) { event.preventDefault(); insert(); }
    });
    button.addEventListener("click", function (event) {
      if (event.detail === 0) { insert(); }
    });

    function insert() {
      var placeholder = "{{ " + button.dataset.mergeField + " }}";
      var rte = editor.RichTextEditor.globalRte;
      var editing = editor.getEditing();
      if (editing && rte) {
        rte.insertHTML(escapeText(placeholder));
        status.textContent = "Inserted " + placeholder + ".";
        return;
      }
      var selected = editor.getSelected();
      if (selected && selected.get("type") === "mj-text" && !isFooter(selected.parent().parent())) {
        selected.components(selected.getInnerHTML() + " " + escapeText(placeholder));
        status.textContent = "Added " + placeholder + " at the end of the selected text.";
        return;
      }
      status.textContent = "Select a text in the email first (double-click to place the cursor).";
    }
  });

  // --- Submit: the MJML goes to the server ----------------------------------------------------------
  var form = document.getElementById("design-form");
  form.addEventListener("submit", function () {
    editor.select();  // ends text editing, so the last keystrokes are in the model
    form.querySelector("input[name=mjml]").value = editor.getHtml();
  });

  // --- Preview sizes --------------------------------------------------------------------------------
  var frame = document.getElementById("preview-frame");
  document.querySelectorAll("[data-preview-mode]").forEach(function (button) {
    button.addEventListener("click", function () {
      frame.className = "preview-frame preview-" + button.dataset.previewMode;
      document.querySelectorAll("[data-preview-mode]").forEach(function (other) {
        other.setAttribute("aria-pressed", String(other === button));
      });
    });
  });
}());
