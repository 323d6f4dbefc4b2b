# Callbacks batchlatch refused: a 4xx, so the run was NOT recorded (a wrong token, a body
# whose namespace, workflow, job or phase cannot be read). batchlatch counts them in
# batchlatch_callbacks_refused_total{namespace, reason} (namespace "" when none could be
# read, "invalid" when it is not a namespace, "other" past 100 distinct ones); Managed
# Prometheus keeps the namespace as exported_namespace. A callback recorded with warnings
# (a field left out) is not refused: its job shows the warning.

locals {
  # A (namespace, reason) refused in the last 10 minutes. A series appears at its first
  # refusal, when increase() cannot see it yet (it needs two samples): a series that is
  # new within the window counts too.
  refused_query = <<-EOT
    sum by (cluster, exported_namespace, reason) (
      (increase(batchlatch_callbacks_refused_total{${local.selector}}[10m]) > 0)
      or
      (
        batchlatch_callbacks_refused_total{${local.selector}}
        unless
        batchlatch_callbacks_refused_total{${local.selector}} offset 10m
      )
    ) > 0
  EOT
}

resource "google_monitoring_alert_policy" "refused" {
  project      = var.project
  display_name = "batchlatch: callbacks refused (Prometheus)"
  combiner     = "OR"

  conditions {
    display_name = "batchlatch_callbacks_refused_total"

    condition_prometheus_query_language {
      query               = local.refused_query
      duration            = "0s"
      evaluation_interval = "60s"
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      ## batchlatch refused callbacks: $${metric.label.exported_namespace} ($${metric.label.reason})

      batchlatch answered exit-handler callbacks with a 4xx: **those runs were not
      recorded**, so a failed run may not alert. Its log and status page say why:

      ```sh
      kubectl -n ${var.batchlatch_namespace} logs deploy/batchlatch | grep '"callback refused"'
      kubectl -n ${var.batchlatch_namespace} port-forward svc/batchlatch 8080:8080 &   # then open http://localhost:8080/
      ```

      `unauthenticated`: the Secret the exit handler sends does not hold `Bearer <token>`
      with the current token. A field (`namespace`, `phase`, ...): the workflow's exit
      handler sends a body batchlatch cannot file; compare it with
      examples/cronworkflow.yaml.
    EOT
  }
}

output "refused_alert_policy" {
  description = "Resource name of the policy that alerts when batchlatch refuses callbacks."
  value       = google_monitoring_alert_policy.refused.name
}
