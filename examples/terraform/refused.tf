# Callbacks batchlatch refused: a 4xx, so the run was NOT recorded (a wrong token, a body
# whose namespace, workflow, job or phase cannot be read). Nothing else tells: the exit
# handler's pod logs the 4xx and finishes. batchlatch's own log (stderr, JSON, read by
# GKE's agent into log "stderr") has a WARN line "callback refused" for each, with the
# namespace (when it is one) and the reason; at least the first of each namespace and
# reason every 10 seconds (the rest are counted on the next line). This metric counts
# those lines; the policy opens an incident per namespace and reason while they come.
#
# A callback recorded with warnings (a field left out, e.g. a bad failure threshold) is
# not refused: its job shows the warning (REST lastWarning, the status page).

resource "google_logging_metric" "refused" {
  project     = var.project
  name        = var.refused_metric_name
  description = "batchlatch: callbacks it refused (their runs were not recorded), from its own log."

  filter = join(" AND ", [
    "logName=\"projects/${var.project}/logs/stderr\"",
    "resource.type=\"k8s_container\"",
    "resource.labels.namespace_name=\"${var.batchlatch_namespace}\"",
    "resource.labels.container_name=\"${var.batchlatch_container}\"",
    "jsonPayload.message=\"callback refused\"",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "batchlatch callbacks refused"

    labels {
      key         = "namespace"
      value_type  = "STRING"
      description = "Namespace the refused callback named; empty when none could be read or it is not a namespace."
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Why: the identity field to blame (namespace, workflowName, uid, phase, job), malformed, unauthenticated, body_too_large or unsupported_media_type."
    }
  }

  label_extractors = {
    "namespace" = "EXTRACT(jsonPayload.namespace)"
    "reason"    = "EXTRACT(jsonPayload.reason)"
  }
}

resource "google_monitoring_alert_policy" "refused" {
  project      = var.project
  display_name = "batchlatch: callbacks refused"
  combiner     = "OR"

  conditions {
    display_name = "batchlatch refused callbacks"

    condition_threshold {
      filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.refused.name}\" AND resource.type=\"k8s_container\""

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = concat(["metric.label.namespace", "metric.label.reason"], var.extra_group_by_fields)
      }

      # Any refusal in the last 10 minutes. A counter has no points while nothing is
      # refused: the condition is then not met and the incident closes.
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      ## batchlatch refused callbacks: $${metric.label.namespace} ($${metric.label.reason})

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

  depends_on = [google_logging_metric.refused]
}

variable "refused_metric_name" {
  description = "Name of the log-based metric of refused callbacks."
  type        = string
  default     = "batchlatch/callbacks-refused"
}

variable "batchlatch_container" {
  description = "Name of batchlatch's container (the chart's: batchlatch): the refusal metric reads its log."
  type        = string
  default     = "batchlatch"
}

output "refused_alert_policy" {
  description = "Resource name of the policy that alerts when batchlatch refuses callbacks."
  value       = google_monitoring_alert_policy.refused.name
}
