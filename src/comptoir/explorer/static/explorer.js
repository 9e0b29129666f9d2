// Follows the market's live feed (Server-Sent Events) and turns each event into a DOM
// event that htmx fragments listen to (hx-trigger="cx-task from:body"), so the part of
// the page that changed is fetched again: no reload, no polling. The stream starts after
// the position the page was rendered at and resumes after the last event seen, so the
// market sends what happened in between; when it cannot (stream.resync), every live
// part of the page is fetched again.
(function () {
  "use strict";
  var EVENTS = {
    "deal.recorded": ["cx-price", "cx-deal"],
    "deal.updated": ["cx-deal"],
    "task.updated": ["cx-task", "cx-deal"],
    "order.published": ["cx-order"],
    "order.updated": ["cx-order"],
    "order.cancelled": ["cx-order"]
  };
  var live, liveText, source, position, retry = 1000;

  function show(state, text) {
    if (!live) return;
    live.dataset.state = state;
    liveText.textContent = text;
  }

  function fire(name, detail) {
    document.body.dispatchEvent(new CustomEvent(name, { detail: detail || {}, bubbles: true }));
  }

  function connect() {
    var url = document.body.dataset.stream;
    if (!url || !window.EventSource) { show("off", "Live updates unavailable"); return; }
    if (position) url = url.split("?")[0] + "?after=" + encodeURIComponent(position);
    source = new EventSource(url);
    source.onopen = function () {
      retry = 1000;
      show("on", "Live");
    };
    source.addEventListener("stream.resync", function () { fire("cx-resync"); });
    source.onerror = function () {
      // the browser retries by itself while the stream is CONNECTING (sending the last
      // event id); a CLOSED one is ours to reopen, after that id
      show("down", "Reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 15000);
      }
    };
    Object.keys(EVENTS).forEach(function (name) {
      source.addEventListener(name, function (message) {
        if (message.lastEventId) position = message.lastEventId;
        var data = {};
        try { data = JSON.parse(message.data); } catch (e) { return; }
        EVENTS[name].forEach(function (domEvent) { fire(domEvent, data); });
      });
    });
  }

  window.addEventListener("pagehide", function () { if (source) source.close(); });
  document.addEventListener("DOMContentLoaded", function () {
    live = document.getElementById("live");
    liveText = live ? live.querySelector(".live-text") : null;
    connect();
  });
})();
