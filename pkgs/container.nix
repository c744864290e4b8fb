# An OCI image of servy (dockerTools.streamLayeredImage), for Fly.io or Kubernetes:
#
#   nix build .#container && ./result | docker load    # or podman load
#
# Runs as nobody. Inside the container servy binds its own ports on every address: the
# site on 8080, metrics (/metrics, /healthz, /readyz for probes) on 8081, JSON logs on
# stderr. Any key can be changed with SERVY_<SECTION>_<KEY> variables (e.g.
# SERVY_REDIRECTS_SOURCE) without rebuilding.
{
  lib,
  dockerTools,
  formats,
  servy,
}: let
  config = (formats.toml {}).generate "servy.toml" {
    http.listen = ["0.0.0.0:8080"];
    # Reachable by the platform's probes and Prometheus; publish it only where wanted.
    metrics.listen = ["0.0.0.0:8081"];
    log.format = "json";
  };
in
  dockerTools.streamLayeredImage {
    name = "servy";
    tag = servy.version;
    # CA roots for fetching redirects over https.
    contents = [dockerTools.caCertificates];
    config = {
      Entrypoint = [(lib.getExe servy)];
      Cmd = ["--config" "${config}"];
      User = "65534:65534";
      ExposedPorts = {
        "8080/tcp" = {};
        "8081/tcp" = {};
      };
    };
  }
