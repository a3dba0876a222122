/* The step panel's settings for the step kinds beyond send, wait and branch: update field or tag,
 * static list, webhook, notify staff, jump, A/B split. builder.js calls
 * journeyPanels[type](ui, key, step); `ui` gives the labelled field builders and the model writers
 * (every setting has a label, every change writes the JSON back). The exits (next step, the split's
 * paths, the jump's step) are drawn by builder.js from exitNames().
 */
(function () {
  "use strict";

  function changed(control, handler) {
    control.addEventListener("change", handler);
    return control;
  }

  var WEEKDAYS = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"], ["thu", "Thursday"], ["fri", "Friday"], ["sat", "Saturday"], ["sun", "Sunday"]];

  window.journeyPanels = {
    // A wait until a date/time window (in the contact's time zone): opens at, closes at, the
    // weekdays, and optionally the first day.
    waitWindow: function (ui, key, step) {
      var w = step.window;
      function store() { ui.set(key, "window", w); }
      changed(ui.field("Window opens at", ui.input(w.start, "time"), "The contact's local time (its own time zone, else its state's, else the organization's)."), function (e) {
        w.start = e.target.value; store();
      });
      changed(ui.field("Window closes at", ui.input(w.end, "time")), function (e) { w.end = e.target.value; store(); });
      var days = w.days || WEEKDAYS.map(function (d) { return d[0]; });
      var group = document.createElement("fieldset");
      var legend = document.createElement("legend");
      legend.textContent = "Window days";
      group.appendChild(legend);
      WEEKDAYS.forEach(function (d) {
        var label = document.createElement("label");
        var box = document.createElement("input");
        box.type = "checkbox";
        box.value = d[0];
        box.checked = days.indexOf(d[0]) >= 0;
        box.addEventListener("change", function () {
          w.days = WEEKDAYS.map(function (x) { return x[0]; }).filter(function (x) {
            return x === d[0] ? box.checked : (w.days || days).indexOf(x) >= 0;
          });
          store();
        });
        label.appendChild(box);
        label.appendChild(document.createTextNode(" " + d[1]));
        group.appendChild(label);
      });
      ui.panel.appendChild(group);
      changed(ui.field("Not before", ui.input(w.from_date, "date"), "Optional: the first day the window may open."), function (e) {
        if (e.target.value) { w.from_date = e.target.value; } else { delete w.from_date; }
        store();
      });
    },

    update: function (ui, key, step) {
      changed(ui.field("Add tag", ui.input(step.add_tag)), function (e) { ui.set(key, "add_tag", e.target.value.trim()); });
      changed(ui.field("Remove tag", ui.input(step.remove_tag)), function (e) { ui.set(key, "remove_tag", e.target.value.trim()); });
      changed(ui.field("Journey stage", ui.select(ui.palette.stages, step.journey_stage, "— unchanged —")), function (e) {
        ui.set(key, "journey_stage", e.target.value);
      });
      var language = (step.set_field || {}).field === "language" ? step.set_field.value : "";
      changed(ui.field("Set preferred language", ui.input(language), "A language code, like es. Empty: unchanged."), function (e) {
        var value = e.target.value.trim();
        ui.set(key, "set_field", value ? { field: "language", value: value } : "");
      });
    },

    list: function (ui, key, step) {
      changed(ui.field("List", ui.input(step.list), "A short name (a-z, 0-9, . _ -). Segments select it as the tag list.<name>."), function (e) {
        ui.set(key, "list", e.target.value.trim());
      });
      var actions = [{ id: "add", name: "Add the contact to the list" }, { id: "remove", name: "Remove the contact from the list" }];
      changed(ui.field("List action", ui.select(actions, step.action, "— choose —")), function (e) { ui.set(key, "action", e.target.value); });
    },

    webhook: function (ui, key, step) {
      var help = ui.palette.webhooks.length
        ? "Receives the journey, step and contact ids (never health information)."
        : "No active webhook endpoint yet: an organization admin adds one under Webhooks.";
      changed(ui.field("Webhook endpoint", ui.select(ui.palette.webhooks, step.endpoint_id, "— choose —"), help), function (e) {
        ui.set(key, "endpoint_id", e.target.value);
      });
    },

    notify: function (ui, key, step) {
      changed(ui.field("Staff role to notify", ui.select(ui.palette.roles, step.role, "— choose —")), function (e) { ui.set(key, "role", e.target.value); });
      var subject = ui.input(step.subject);
      subject.maxLength = 120;
      changed(ui.field("Subject", subject, "The email to staff links to the contacts' pages; it names no patient."), function (e) {
        ui.set(key, "subject", e.target.value.trim());
      });
    },

    jump: function (ui, key, step) {
      var kinds = [{ id: "step", name: "a step of this journey" }, { id: "journey", name: "another journey" }];
      var current = "journey_id" in step ? "journey" : "step";
      changed(ui.field("Jump to", ui.select(kinds, current)), function (e) {
        if (e.target.value === "journey") {
          ui.connect(key, 0, "");
          step.journey_id = "";
        } else {
          delete step.journey_id;
        }
        ui.write();
        ui.show(key);
      });
      if (current === "journey") {
        changed(ui.field("Journey", ui.select(ui.palette.journeys, step.journey_id, "— choose —"), "The contact leaves this journey and enters that one (if it is active)."), function (e) {
          step.journey_id = e.target.value;
          ui.write();
        });
      }
    },

    split: function (ui, key, step) {
      changed(ui.field("Winner metric", ui.select(ui.palette.metrics, step.metric, "— choose —"), "The path with the best rate of this wins in the report."), function (e) {
        ui.set(key, "metric", e.target.value);
      });
      (step.variants || []).forEach(function (variant, i) {
        var weight = ui.input(variant.weight, "number");
        weight.min = "1";
        weight.max = "100";
        changed(ui.field("Path " + (i + 1) + " weight", weight, i === 0 ? "Contacts are shared in proportion to the weights." : ""), function (e) {
          var n = parseInt(e.target.value, 10);
          if (isNaN(n)) { delete variant.weight; } else { variant.weight = n; }
          ui.write();
        });
      });
      var buttons = document.createElement("p");
      var add = ui.button("Add a path", function () {
        step.variants.push({ weight: 50 });
        ui.redraw(key);
      });
      add.disabled = step.variants.length >= ui.palette.max_variants;
      var remove = ui.button("Remove the last path", function () {
        step.variants.pop();
        ui.redraw(key);
      });
      remove.disabled = step.variants.length <= 2;
      buttons.appendChild(add);
      buttons.appendChild(document.createTextNode(" "));
      buttons.appendChild(remove);
      ui.panel.appendChild(buttons);
    },
  };

  // A new step of these kinds starts with what its outputs need.
  window.journeyStepDefaults = {
    split: function () { return { type: "split", variants: [{ weight: 50 }, { weight: 50 }], metric: "click" }; },
    list: function () { return { type: "list", action: "add" }; },
  };
})();
