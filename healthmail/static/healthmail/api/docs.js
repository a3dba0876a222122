// The API reference page: Redoc (served from our static files) renders the schema named on the container.
(function () {
  const container = document.getElementById("redoc-container");
  Redoc.init(container.dataset.schemaUrl, {}, container);
})();
