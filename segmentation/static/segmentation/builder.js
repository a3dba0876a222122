// Visual segment builder: edits the JSON definition in #id_definition as nested groups
// (all / any / not) of conditions, and asks the server for a fresh (masked) count after each change.
// The server validates everything again; this only helps people build valid definitions.
(function () {
  "use strict";
  var root = document.getElementById("segment-builder");
  var textarea = document.getElementById("id_definition");
  if (!root || !textarea) return;
  var fields = JSON.parse(document.getElementById(root.dataset.fieldsId).textContent);
  var byName = {};
  fields.forEach(function (f) { byName[f.name] = f; });
  var LIST_OPS = ["in", "not_in", "all"];
  var counter = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  // --- model <-> JSON ---------------------------------------------------------------------
  function toModel(json) {
    if (json && json.all) return { mode: "all", children: json.all.map(toModel) };
    if (json && json.any) return { mode: "any", children: json.any.map(toModel) };
    if (json && json.not) {
      var inner = json.not;
      return { mode: "not", children: inner.all ? inner.all.map(toModel) : [toModel(inner)] };
    }
    if (json && json.field) return { field: json.field, op: json.op, value: json.value };
    return { mode: "all", children: [] };
  }

  function toJson(node) {
    if (node.field !== undefined) return { field: node.field, op: node.op, value: node.value };
    var children = node.children.map(toJson);
    if (node.mode === "not") return { not: { all: children } };
    var out = {};
    out[node.mode] = children;
    return out;
  }

  var model;
  try { model = toModel(JSON.parse(textarea.value || "{}")); } catch (e) { model = toModel(null); }
  if (model.field !== undefined) model = { mode: "all", children: [model] };

  var timer = null;
  function changed() {
    textarea.value = JSON.stringify(toJson(model));
    clearTimeout(timer);
    timer = setTimeout(function () {
      if (window.htmx) window.htmx.trigger("#segment-count", "refresh");
    }, 250);
  }

  // --- values -----------------------------------------------------------------------------
  function defaultValue(field, op) {
    if (LIST_OPS.indexOf(op) >= 0) return field.choices.length ? [field.choices[0].value] : [];
    if (op === "between") return [18, 65];
    if (op === "count_at_least") return [2, 30];
    if (field.type === "boolean") return true;
    if (field.type === "integer") return 40;
    if (field.type === "days") return 30;
    if (field.choices.length) return field.choices[0].value;
    return "";
  }

  function valueInput(node, field) {
    var id = "v" + (++counter);
    var wrap = el("span", { class: "value" });
    if (node.op === "count_at_least") {
      [0, 1].forEach(function (i) {
        var input = el("input", { type: "number", min: "1", max: i ? "3650" : "1000",
                                  "aria-label": i ? "Days" : "Times", value: String(node.value[i]) });
        input.addEventListener("input", function () { node.value[i] = Number(input.value); changed(); });
        wrap.appendChild(input);
      });
      return wrap;
    }
    if (node.op === "between") {
      [0, 1].forEach(function (i) {
        var input = el("input", { type: "number", min: "0", max: "130", "aria-label": i ? "To" : "From",
                                  value: String(node.value[i]) });
        input.addEventListener("input", function () { node.value[i] = Number(input.value); changed(); });
        wrap.appendChild(input);
      });
      return wrap;
    }
    var isList = LIST_OPS.indexOf(node.op) >= 0;
    var input;
    if (field.type === "boolean") {
      input = el("select", { id: id, "aria-label": "Value" }, [
        el("option", { value: "true", text: "yes" }), el("option", { value: "false", text: "no" })]);
      input.value = String(node.value);
      input.addEventListener("change", function () { node.value = input.value === "true"; changed(); });
    } else if (field.choices.length) {
      input = el("select", { id: id, "aria-label": "Value" });
      if (isList) input.multiple = true;
      field.choices.forEach(function (choice) {
        var option = el("option", { value: choice.value, text: choice.label });
        var current = isList ? node.value : [node.value];
        option.selected = current.indexOf(choice.value) >= 0;
        input.appendChild(option);
      });
      input.addEventListener("change", function () {
        var picked = Array.prototype.filter.call(input.options, function (o) { return o.selected; })
          .map(function (o) { return o.value; });
        node.value = isList ? picked : picked[0];
        changed();
      });
    } else if (field.type === "integer" || field.type === "days") {
      input = el("input", { id: id, type: "number", min: field.type === "days" ? "1" : "0",
                            "aria-label": "Value", value: String(node.value) });
      input.addEventListener("input", function () { node.value = Number(input.value); changed(); });
    } else {
      input = el("input", { id: id, type: "text", "aria-label": "Value", maxlength: "2000",
                            placeholder: isList ? "codes, separated by commas" : "",
                            value: isList ? (node.value || []).join(", ") : (node.value || "") });
      input.addEventListener("input", function () {
        node.value = isList
          ? input.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean)
          : input.value;
        changed();
      });
    }
    wrap.appendChild(input);
    if (field.lookup_url && isList) wrap.appendChild(codeSearch(field, node, input));
    if (field.help) wrap.appendChild(el("small", { class: "help", text: " " + field.help }));
    return wrap;
  }

  // Search codes by name (e.g. "type 2 diabetes"); picking one adds its code to the list.
  function codeSearch(field, node, valueInput) {
    var box = el("span", { class: "code-search" });
    var search = el("input", { type: "search", "aria-label": "Find a condition code",
                               placeholder: "find by words, e.g. type 2 diabetes" });
    var results = el("ul", { class: "code-results", role: "listbox", "aria-label": "Matching codes" });
    var timer = null;
    search.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        fetch(field.lookup_url + "?q=" + encodeURIComponent(search.value), { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (data) {
            results.textContent = "";
            data.results.forEach(function (item) {
              var pick = el("button", { type: "button", text: item.label });
              pick.addEventListener("click", function () {
                node.value = (node.value || []).concat([item.value]);
                valueInput.value = node.value.join(", ");
                results.textContent = "";
                changed();
              });
              results.appendChild(el("li", {}, [pick]));
            });
          });
      }, 250);
    });
    box.appendChild(search);
    box.appendChild(results);
    return box;
  }

  // --- rendering --------------------------------------------------------------------------
  function conditionRow(node, parent) {
    var field = byName[node.field] || fields[0];
    var row = el("div", { class: "condition", role: "group", "aria-label": "Condition" });
    var fieldSelect = el("select", { "aria-label": "Field" });
    var groups = {};
    fields.forEach(function (f) {
      if (!groups[f.group]) { groups[f.group] = el("optgroup", { label: f.group }); fieldSelect.appendChild(groups[f.group]); }
      groups[f.group].appendChild(el("option", { value: f.name, text: f.label + (f.is_phi ? " (PHI)" : "") }));
    });
    fieldSelect.value = field.name;
    fieldSelect.addEventListener("change", function () {
      var next = byName[fieldSelect.value];
      node.field = next.name;
      node.op = next.operators[0].value;
      node.value = defaultValue(next, node.op);
      render(); changed();
    });
    var opSelect = el("select", { "aria-label": "Operator" });
    field.operators.forEach(function (op) { opSelect.appendChild(el("option", { value: op.value, text: op.label })); });
    opSelect.value = node.op;
    opSelect.addEventListener("change", function () {
      node.op = opSelect.value;
      node.value = defaultValue(field, node.op);
      render(); changed();
    });
    var remove = el("button", { type: "button", class: "link", text: "Remove", "aria-label": "Remove condition" });
    remove.addEventListener("click", function () {
      parent.children.splice(parent.children.indexOf(node), 1);
      render(); changed();
    });
    row.appendChild(fieldSelect);
    if (field.is_phi) row.appendChild(el("span", { class: "badge warn phi", title: "Clinical data: using it makes this a PHI segment", text: "PHI" }));
    row.appendChild(opSelect);
    row.appendChild(valueInput(node, field));
    row.appendChild(remove);
    return row;
  }

  function groupBox(node, parent, depth) {
    var box = el("fieldset", { class: "group depth-" + depth });
    var legend = el("legend", { text: depth === 0 ? "Contacts matching" : "Group matching" });
    box.appendChild(legend);
    var mode = el("select", { "aria-label": "Match" }, [
      el("option", { value: "all", text: "all of (AND)" }),
      el("option", { value: "any", text: "any of (OR)" }),
      el("option", { value: "not", text: "not all of (NOT)" })]);
    mode.value = node.mode;
    mode.addEventListener("change", function () { node.mode = mode.value; changed(); });
    box.appendChild(mode);
    node.children.forEach(function (child) {
      box.appendChild(child.field !== undefined ? conditionRow(child, node) : groupBox(child, node, depth + 1));
    });
    var actions = el("div", { class: "actions" });
    var addCondition = el("button", { type: "button", text: "Add condition" });
    addCondition.addEventListener("click", function () {
      var f = fields[0];
      node.children.push({ field: f.name, op: f.operators[0].value, value: defaultValue(f, f.operators[0].value) });
      render(); changed();
    });
    actions.appendChild(addCondition);
    if (depth < 5) {
      var addGroup = el("button", { type: "button", text: "Add group" });
      addGroup.addEventListener("click", function () {
        node.children.push({ mode: "any", children: [] });
        render(); changed();
      });
      actions.appendChild(addGroup);
    }
    if (parent) {
      var remove = el("button", { type: "button", class: "link", text: "Remove group" });
      remove.addEventListener("click", function () {
        parent.children.splice(parent.children.indexOf(node), 1);
        render(); changed();
      });
      actions.appendChild(remove);
    }
    box.appendChild(actions);
    return box;
  }

  function render() {
    root.replaceChildren(groupBox(model, null, 0));
  }

  textarea.addEventListener("change", function () {
    try { model = toModel(JSON.parse(textarea.value)); render(); } catch (e) { /* server explains */ }
    if (window.htmx) window.htmx.trigger("#segment-count", "refresh");
  });
  render();
})();
