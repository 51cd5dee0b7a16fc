// Swagger UI's start-up, in a file of its own so that the page's Content-Security-Policy
// allows scripts from this origin only (no inline script). The spec's URL comes from the
// page, where the server wrote it.
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
