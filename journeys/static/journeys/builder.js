/* The journey builder: a Drawflow canvas over the definition's steps.
 *
 * The model is the steps object the form posts (textarea #id_steps, the same JSON the server
 * validates with journeys/definition.py); the canvas and the step panel are views of it. Every
 * change writes the JSON back, so the server never depends on this script: without JavaScript the
 * textarea and the server-rendered step list are the builder.
 */
(function () {
  "use strict";

  var root = document.getElementById("journey-builder");
  var stepsField = document.getElementById("id_steps");
  var layoutField = document.getElementById("id_layout");
  var startField = document.getElementById("id_start");
  if (!root || !stepsField || typeof Drawflow === "undefined") {
    return;
  }
  var palette = JSON.parse(document.getElementById("journey-palette").textContent);
  var problems = JSON.parse(document.getElementById("journey-step-problems").textContent) || {};
  var TRANSACTIONAL = ["treatment", "payment", "operations"];
  var KEY = /^[a-z][a-z0-9_]{0,23}$/;

  var steps = {};
  try {
    steps = JSON.parse(stepsField.value || "{}") || {};
  } catch (e) {
    steps = {};
  }
  var layout = {};
  try {
    layout = JSON.parse(layoutField.value || "{}") || {};
  } catch (e) {
    layout = {};
  }

  root.hidden = false;
  // The server's step list is the builder without JavaScript; here the canvas and panel are.
  var serverList = document.querySelector("[data-testid=step-list]");
  if (serverList) {
    serverList.hidden = true;
  }
  var json = document.getElementById("steps-json");
  if (json && !Object.keys(problems).length) {
    json.open = false;
  }

  var container = document.getElementById("drawflow");
  var panel = document.getElementById("step-panel");
  var editor = new Drawflow(container);
  editor.reroute = false;
  editor.start();

  var idOf = {}; // step key -> node id
  var keyOf = {}; // node id -> step key
  var selected = null;
  var loading = false;

  function exitsOf(type) {
    return palette.exits[type] || [];
  }

  // A step's outputs, in port order: its exit keys, or a split's paths (variants[i].next). A jump to
  // another journey has none of its own step to go to, but keeps its port to switch back.
  function exitNames(step) {
    if (step.type === "split") {
      return (step.variants || []).map(function (v, i) { return "path " + (i + 1); });
    }
    return exitsOf(step.type);
  }

  function exitTarget(step, i) {
    if (step.type === "split") { return ((step.variants || [])[i] || {}).next; }
    return step[exitsOf(step.type)[i]];
  }

  function setExit(step, i, target) {
    if (step.type === "split") {
      var variant = (step.variants || [])[i];
      if (!variant) { return; }
      if (target) { variant.next = target; } else { delete variant.next; }
      return;
    }
    var name = exitsOf(step.type)[i];
    if (!name) { return; }
    if (target) {
      step[name] = target;
      if (step.type === "jump") { delete step.journey_id; }
    } else {
      delete step[name];
    }
  }

  function label(type) {
    return palette.step_labels[type] || type;
  }

  function option(list, id) {
    var found = (list || []).find(function (x) { return x.id === id; });
    return found ? found.name : null;
  }

  function text(tag, content, className) {
    var el = document.createElement(tag);
    if (content !== undefined && content !== null) {
      el.textContent = content;
    }
    if (className) {
      el.className = className;
    }
    return el;
  }

  function summary(step) {
    switch (step.type) {
      case "send": {
        var t = palette.templates.find(function (x) { return x.id === step.template_id; });
        return (t ? t.name : "no template") + " · " + (step.purpose || "?");
      }
      case "wait": {
        if (!step.window) { return "wait " + duration(step.seconds); }
        var w = step.window;
        return "until " + (w.days && w.days.length < 7 ? w.days.join(" ") + " " : "") + w.start + "-" + w.end + (w.from_date ? " from " + w.from_date : "");
      }
      case "wait_event": return (step.event || "?") + " (at most " + duration(step.timeout_seconds) + ")";
      case "branch": {
        var c = step.condition || {};
        if ("tag" in c) { return "tag " + c.tag + "?"; }
        if ("field" in c) { return c.field + " = " + c.equals + "?"; }
        if ("consent" in c) { return "opted in to " + c.consent + "?"; }
        if ("engagement" in c) { return c.engagement + "ed?"; }
        return "no condition";
      }
      case "update": {
        var parts = [];
        if (step.add_tag) { parts.push("+" + step.add_tag); }
        if (step.remove_tag) { parts.push("−" + step.remove_tag); }
        if (step.journey_stage) { parts.push("stage " + step.journey_stage); }
        if (step.set_field) { parts.push("language " + step.set_field.value); }
        return parts.join(", ") || "no change";
      }
      case "list": return (step.action === "remove" ? "remove from " : "add to ") + (step.list || "?");
      case "webhook": return option(palette.webhooks, step.endpoint_id) || "no endpoint";
      case "notify": return (option(palette.roles, step.role) || "no role") + ": " + (step.subject || "no subject");
      case "jump": return "journey_id" in step ? "to journey " + (option(palette.journeys, step.journey_id) || "?") : "to step " + (step.to || "?");
      case "split": return (step.variants || []).map(function (v) { return v.weight || "?"; }).join(" / ") + " · winner by " + (option(palette.metrics, step.metric) || "?");
      default: return "";
    }
  }

  function duration(seconds) {
    seconds = Number(seconds) || 0;
    if (seconds && seconds % 86400 === 0) { return seconds / 86400 + " d"; }
    if (seconds && seconds % 3600 === 0) { return seconds / 3600 + " h"; }
    return Math.round(seconds / 60) + " min";
  }

  function drawNode(key) {
    var step = steps[key];
    var node = document.getElementById("node-" + idOf[key]);
    if (!node) { return; }
    var content = node.querySelector(".drawflow_content_node");
    content.textContent = "";
    var box = text("div", null, "jn");
    box.appendChild(text("strong", key));
    box.appendChild(text("span", label(step.type), "jn-type"));
    if (startField && startField.value === key) {
      box.appendChild(text("span", " · first step", "jn-start"));
    }
    box.appendChild(text("div", summary(step)));
    var exits = text("ul", null, "jn-exits");
    if (!(step.type === "jump" && "journey_id" in step)) {
      exitNames(step).forEach(function (name, i) {
        exits.appendChild(text("li", (i + 1) + ". " + name + " → " + (exitTarget(step, i) || "—")));
      });
    }
    box.appendChild(exits);
    var mine = problems[key] || [];
    node.classList.toggle("invalid", mine.length > 0);
    if (mine.length) {
      // The alert is a box around the list: role="alert" on the <ul> itself would take away its list
      // role and leave the items orphaned (axe: listitem).
      var alert = text("div", null, "jn-problems");
      alert.setAttribute("role", "alert");
      var list = text("ul");
      mine.forEach(function (p) { list.appendChild(text("li", p)); });
      alert.appendChild(list);
      box.appendChild(alert);
    }
    content.appendChild(box);
  }

  function write() {
    if (loading) { return; }
    var positions = {};
    Object.keys(idOf).forEach(function (key) {
      var node = editor.getNodeFromId(idOf[key]);
      positions[key] = [Math.round(node.pos_x), Math.round(node.pos_y)];
    });
    stepsField.value = JSON.stringify(steps, null, 2);
    layoutField.value = JSON.stringify(positions);
    Object.keys(idOf).forEach(drawNode);
  }

  function addNode(key, x, y) {
    var type = steps[key].type;
    var id = editor.addNode(type, 1, exitNames(steps[key]).length, x, y, "step-" + type, { key: key }, "");
    idOf[key] = id;
    keyOf[id] = key;
    drawNode(key);
    return id;
  }

  function connect(key, i, target) {
    if (i < 0 || i >= exitNames(steps[key]).length) { return; }
    var output = "output_" + (i + 1);
    var node = editor.getNodeFromId(idOf[key]);
    (node.outputs[output].connections || []).slice().forEach(function (c) {
      editor.removeSingleConnection(idOf[key], c.node, output, c.output);
    });
    if (target && idOf[target] !== undefined) {
      editor.addConnection(idOf[key], idOf[target], output, "input_1");
    } else {
      setExit(steps[key], i, "");
    }
  }

  function load() {
    loading = true;
    editor.clear();
    idOf = {};
    keyOf = {};
    Object.keys(steps).forEach(function (key, index) {
      var xy = layout[key] || [20 + (index % 3) * 200, 20 + Math.floor(index / 3) * 150];
      addNode(key, xy[0], xy[1]);
    });
    Object.keys(steps).forEach(function (key) {
      exitNames(steps[key]).forEach(function (name, i) {
        var target = exitTarget(steps[key], i);
        if (target && idOf[target] !== undefined) {
          editor.addConnection(idOf[key], idOf[target], "output_" + (i + 1), "input_1");
        }
      });
    });
    loading = false;
    write();
  }

  editor.on("connectionCreated", function (c) {
    var key = keyOf[c.output_id];
    var target = keyOf[c.input_id];
    if (!key || !target) { return; }
    var index = Number(c.output_class.split("_")[1]) - 1;
    if (!loading) {
      // One target per exit: a new connection replaces the old one.
      var node = editor.getNodeFromId(c.output_id);
      (node.outputs[c.output_class].connections || []).slice().forEach(function (old) {
        if (String(old.node) !== String(c.input_id)) {
          editor.removeSingleConnection(c.output_id, old.node, c.output_class, old.output);
        }
      });
    }
    setExit(steps[key], index, target);
    write();
    if (selected === key) { showPanel(key); }
  });

  editor.on("connectionRemoved", function (c) {
    var key = keyOf[c.output_id];
    var target = keyOf[c.input_id];
    if (!key || !steps[key]) { return; }
    var index = Number(c.output_class.split("_")[1]) - 1;
    if (exitTarget(steps[key], index) === target) {
      setExit(steps[key], index, "");
    }
    write();
    if (selected === key) { showPanel(key); }
  });

  editor.on("nodeSelected", function (id) {
    selected = keyOf[id];
    showPanel(selected);
  });
  editor.on("nodeUnselected", function () {
    selected = null;
    showPanel(null);
  });
  editor.on("nodeMoved", write);
  editor.on("nodeRemoved", function (id) {
    var key = keyOf[id];
    if (!key) { return; }
    removeStep(key, true);
  });

  function removeStep(key, alreadyGone) {
    Object.keys(steps).forEach(function (other) {
      exitNames(steps[other]).forEach(function (name, i) {
        if (exitTarget(steps[other], i) === key) { setExit(steps[other], i, ""); }
      });
    });
    delete steps[key];
    if (!alreadyGone) { editor.removeNodeId("node-" + idOf[key]); }
    delete keyOf[idOf[key]];
    delete idOf[key];
    if (startField && startField.value === key) { startField.value = ""; }
    selected = null;
    showPanel(null);
    write();
  }

  // --- The step panel: every setting with a label, usable from the keyboard ------------------------

  var counter = 0;

  function field(labelText, control, help) {
    counter += 1;
    var wrap = text("div", null, "field");
    control.id = control.id || "panel-field-" + counter;
    var label = text("label", labelText);
    label.htmlFor = control.id;
    wrap.appendChild(label);
    wrap.appendChild(control);
    if (help) {
      var p = text("p", help, "help");
      wrap.appendChild(p);
    }
    panel.appendChild(wrap);
    return control;
  }

  function select(options, value, blank) {
    var el = document.createElement("select");
    if (blank !== undefined) {
      var none = text("option", blank);
      none.value = "";
      el.appendChild(none);
    }
    options.forEach(function (o) {
      var opt = text("option", o.name);
      opt.value = o.id;
      el.appendChild(opt);
    });
    el.value = value === undefined || value === null ? "" : String(value);
    return el;
  }

  function input(value, type) {
    var el = document.createElement("input");
    el.type = type || "text";
    el.value = value === undefined || value === null ? "" : String(value);
    return el;
  }

  function set(key, name, value) {
    if (value === "" || value === null || value === undefined) {
      delete steps[key][name];
    } else {
      steps[key][name] = value;
    }
    write();
  }

  function durationFields(key, name, labelText) {
    var seconds = Number(steps[key][name]) || 0;
    var unit = seconds && seconds % 86400 === 0 ? 86400 : seconds && seconds % 3600 === 0 ? 3600 : 60;
    var amount = input(seconds ? seconds / unit : "", "number");
    amount.min = "1";
    var units = select([{ id: 60, name: "minutes" }, { id: 3600, name: "hours" }, { id: 86400, name: "days" }], unit);
    function update() {
      var n = parseInt(amount.value, 10);
      set(key, name, isNaN(n) ? "" : n * Number(units.value));
    }
    field(labelText, amount).addEventListener("change", update);
    field(labelText + " unit", units).addEventListener("change", update);
  }

  function button(title, onClick) {
    var el = text("button", title, "secondary");
    el.type = "button";
    el.addEventListener("click", onClick);
    return el;
  }

  // A split's paths changed: its node is drawn again with as many outputs, where it stood.
  function redraw(key) {
    write();
    layout = JSON.parse(layoutField.value || "{}");
    load();
    selected = key;
    showPanel(key);
  }

  var ui = {
    palette: palette,
    panel: panel,
    field: field,
    select: select,
    input: input,
    button: button,
    set: set,
    write: write,
    connect: connect,
    redraw: redraw,
    show: function (key) { showPanel(key); },
  };

  function showPanel(key) {
    panel.textContent = "";
    if (!key || !steps[key]) {
      panel.appendChild(text("p", "Select a step to configure it.", "help"));
      return;
    }
    var step = steps[key];
    panel.appendChild(text("h3", "Step " + key + " (" + label(step.type) + ")"));
    (problems[key] || []).forEach(function (p) {
      var el = text("p", p, "error");
      el.setAttribute("role", "alert");
      panel.appendChild(el);
    });
    if (step.type === "send") {
      field("Email template", select(palette.templates, step.template_id, "— choose —")).addEventListener("change", function (e) {
        set(key, "template_id", e.target.value);
      });
      var purpose = field("Purpose", select(palette.purposes, step.purpose, "— choose —"));
      purpose.addEventListener("change", function (e) {
        set(key, "purpose", e.target.value);
        showPanel(key);
      });
      if (step.purpose && TRANSACTIONAL.indexOf(step.purpose) < 0) {
        field("Consent topic", select(palette.topics, step.topic, "— choose —"), "Marketing email goes only to people opted in to this topic.").addEventListener("change", function (e) {
          set(key, "topic", e.target.value);
        });
      } else if (step.topic) {
        delete step.topic;
        write();
      }
    } else if (step.type === "wait") {
      var waitKinds = [{ id: "time", name: "for a time" }, { id: "window", name: "until a time window" }];
      field("Wait", select(waitKinds, "window" in step ? "window" : "time")).addEventListener("change", function (e) {
        if (e.target.value === "window") {
          delete steps[key].seconds;
          steps[key].window = { start: "09:00", end: "17:00", days: ["mon", "tue", "wed", "thu", "fri"] };
        } else {
          delete steps[key].window;
          steps[key].seconds = 86400;
        }
        write();
        showPanel(key);
      });
      if ("window" in step) {
        window.journeyPanels.waitWindow(ui, key, step);
      } else {
        durationFields(key, "seconds", "Wait for");
      }
    } else if (step.type === "wait_event") {
      field("Event", input(step.event), "Like visit.done, posted to /api/v1/events; or email.opened / email.clicked, an open or click of this journey's email (after a send step, a wait for email.opened of N days whose \"If it does not arrive\" path is taken means: did not open within N days).").addEventListener("change", function (e) {
        set(key, "event", e.target.value.trim());
      });
      durationFields(key, "timeout_seconds", "Wait at most");
    } else if (step.type === "branch") {
      var condition = step.condition || {};
      var kinds = [{ id: "tag", name: "has a tag" }, { id: "field", name: "a field equals" }, { id: "consent", name: "opted in to a topic" }, { id: "engagement", name: "opened or clicked this journey's email" }];
      var current = ["tag", "field", "consent", "engagement"].find(function (k) { return k in condition; }) || "";
      field("Condition", select(kinds, current, "— choose —")).addEventListener("change", function (e) {
        var fresh = {};
        if (e.target.value === "field") { fresh = { field: palette.branch_fields[0], equals: "" }; }
        else if (e.target.value) { fresh[e.target.value] = e.target.value === "engagement" ? "open" : ""; }
        steps[key].condition = fresh;
        write();
        showPanel(key);
      });
      if (current === "tag") {
        field("Tag", input(condition.tag)).addEventListener("change", function (e) { condition.tag = e.target.value.trim(); write(); });
      } else if (current === "field") {
        field("Field", select(palette.branch_fields.map(function (f) { return { id: f, name: f }; }), condition.field)).addEventListener("change", function (e) { condition.field = e.target.value; write(); });
        field("Equals", input(condition.equals)).addEventListener("change", function (e) { condition.equals = e.target.value; write(); });
      } else if (current === "consent") {
        field("Topic", select(palette.topics, condition.consent, "— choose —")).addEventListener("change", function (e) { condition.consent = e.target.value; write(); });
      } else if (current === "engagement") {
        field("Engagement", select([{ id: "open", name: "opened" }, { id: "click", name: "clicked" }], condition.engagement)).addEventListener("change", function (e) { condition.engagement = e.target.value; write(); });
      }
    } else if (step.type === "update") {
      window.journeyPanels.update(ui, key, step);
    } else if (window.journeyPanels && window.journeyPanels[step.type]) {
      window.journeyPanels[step.type](ui, key, step);
    }
    var others = Object.keys(steps).filter(function (k) { return k !== key; }).map(function (k) { return { id: k, name: k }; });
    if (!(step.type === "jump" && "journey_id" in step)) {
      exitNames(step).forEach(function (name, i) {
        var title = { next: "Next step", yes: "If yes", no: "If no", timeout_next: "If it does not arrive", to: "Jump to step" }[name] || "Path " + (i + 1) + " goes to";
        field(title, select(others, exitTarget(step, i), "— not connected —")).addEventListener("change", function (e) {
          connect(key, i, e.target.value);
          write();
        });
      });
    }
    var actions = text("p");
    var first = text("button", "Make this the first step", "secondary");
    first.type = "button";
    first.addEventListener("click", function () {
      startField.value = key;
      write();
    });
    var remove = text("button", "Remove step", "danger");
    remove.type = "button";
    remove.addEventListener("click", function () { removeStep(key, false); });
    actions.appendChild(first);
    actions.appendChild(document.createTextNode(" "));
    actions.appendChild(remove);
    panel.appendChild(actions);
  }

  function newKey(type) {
    var n = 1;
    while (steps[type + "_" + n]) { n += 1; }
    return type + "_" + n;
  }

  var keyInput = document.getElementById("new-step-key");
  document.getElementById("add-step").addEventListener("click", function () {
    var type = document.getElementById("new-step-type").value;
    var key = keyInput.value.trim() || newKey(type);
    if (!KEY.test(key) || steps[key]) {
      keyInput.setCustomValidity(steps[key] ? "A step with this name exists." : "Use a-z, 0-9 and _ (at most 24).");
      keyInput.reportValidity();
      return;
    }
    keyInput.setCustomValidity("");
    keyInput.value = "";
    var defaults = (window.journeyStepDefaults || {})[type];
    steps[key] = defaults ? defaults() : { type: type };
    var count = Object.keys(idOf).length;
    addNode(key, 20 + (count % 3) * 200, 20 + Math.floor(count / 3) * 150);
    if (startField && !startField.value) { startField.value = key; }
    selected = key;
    write();
    showPanel(key);
  });

  document.getElementById("zoom-out").addEventListener("click", function () { editor.zoom_out(); });
  document.getElementById("zoom-in").addEventListener("click", function () { editor.zoom_in(); });

  // Hand edits of the JSON (the fallback) redraw the canvas.
  stepsField.addEventListener("change", function () {
    try {
      var parsed = JSON.parse(stepsField.value || "{}");
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
        steps = parsed;
        load();
      }
    } catch (e) {
      /* left for the server to explain */
    }
  });
  if (startField) { startField.addEventListener("change", write); }
  document.getElementById("journey-form").addEventListener("submit", write);

  load();
})();
