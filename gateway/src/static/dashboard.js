// Live status: the gateway relays health's WatchStatus as server-sent events; each one updates
// the badge, reason and action of the integration it names, and is announced politely.
(function () {
  if (!window.EventSource) return;
  var labels = {};
  var source = new EventSource('/events');
  source.addEventListener('status', function (event) {
    var data = JSON.parse(event.data);
    var changed = labels[data.id] !== undefined && labels[data.id] !== data.status;
    labels[data.id] = data.status;
    document.querySelectorAll('[data-connection]').forEach(function (element) {
      if (element.getAttribute('data-connection') !== data.id) return;
      var badge = element.querySelector('[data-field="status"]');
      if (badge) {
        badge.className = 'badge status-' + data.status;
        badge.textContent = data.label;
      }
      var reason = element.querySelector('[data-field="reason"]');
      if (reason) reason.textContent = data.reason;
      var action = element.querySelector('[data-field="action"]');
      if (action) action.textContent = data.action;
    });
    if (!data.snapshot || changed) {
      document.getElementById('live').textContent =
        data.connector + ' is now ' + data.label + ': ' + data.reason;
    }
  });
  document.body.setAttribute('data-live', 'connected');
})();
