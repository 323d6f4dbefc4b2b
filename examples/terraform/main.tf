# One Cloud Monitoring incident per failing job, open from the first failed run until
# the next successful one. README.md in the parent directory explains each setting.
#
# batchlatch writes, every --interval (60 s) and for every job whose latest run failed,
# one entry: severity ERROR, log "batchlatch", labels "namespace" and "job", JSON payload
# with "failing": 1, resource k8s_container. After the job's next success it writes no
# ERROR entry for that job again (only one NOTICE, then INFO entries with "failing": 0).
#
# The metric counts those ERROR entries per namespace and job; the policy opens an
# incident for each (namespace, job) series that counted any in the last alignment
# period, and closes it once a whole period holds none.

locals {
  # Cloud Logging wants the log ID URL-encoded inside logName.
  log_id = replace(var.log_name, "/", "%2F")

  # The series of one incident. Summing over everything else merges the series
  # that each writing batchlatch pod (resource.label.pod_name) makes.
  group_by_fields = concat(
    var.group_by == "job" ? ["metric.label.namespace", "metric.label.job"] : ["metric.label.namespace"],
    var.extra_group_by_fields,
  )
}

resource "google_logging_metric" "failing" {
  project     = var.project
  name        = var.metric_name
  description = "batchlatch: ERROR entries written every interval for each Argo job whose latest run failed."

  filter = <<-EOT
    logName="projects/${var.project}/logs/${local.log_id}"
    AND resource.type="k8s_container"
    AND severity=ERROR
    AND jsonPayload.failing=1
  EOT

  # A counter: one DELTA INT64 point per minute per series, written only for a
  # minute that counted entries (plus one zero right after), so that a gap
  # means "no ERROR entries" or "not ingested yet" alike.
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "batchlatch failing jobs"

    labels {
      key         = "namespace"
      value_type  = "STRING"
      description = "Namespace of the failing job (the workflow's namespace)."
    }
    labels {
      key         = "job"
      value_type  = "STRING"
      description = "CronWorkflow (or WorkflowTemplate) name; empty: the namespace as a whole."
    }
  }

  # Entry labels (alarm.LabelNamespace, alarm.LabelJob) as the metric's labels.
  label_extractors = {
    "namespace" = "EXTRACT(labels.namespace)"
    "job"       = "EXTRACT(labels.job)"
  }
}

resource "google_monitoring_alert_policy" "failing" {
  project      = var.project
  display_name = "batchlatch: batch job failing"
  combiner     = "OR"

  conditions {
    display_name = "batchlatch ERROR entries per ${var.group_by}"

    condition_threshold {
      filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.failing.name}\" AND resource.type=\"k8s_container\""

      aggregations {
        # Longer than the metric's ingestion lag (up to 10 min) plus two write
        # intervals: a late metric does not empty the window, so it does not
        # close the incident and open a second one for the same streak. Also
        # how long after the last ERROR entry the incident closes.
        alignment_period = var.alignment_period
        # Sum of the entries counted in the window. Not ALIGN_COUNT: that
        # counts points, and the zero point a counter writes after its last
        # non-zero minute would hold the incident one more window.
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = local.group_by_fields
      }

      comparison      = "COMPARISON_GT"
      threshold_value = 0
      # The shortest duration that allows evaluation_missing_data (and a
      # multiple of 60 s, as required): one more minute before opening.
      duration = "60s"
      # No entries in the window counts as "not failing": the incident closes at
      # the next evaluation once the window is empty, minutes after the success,
      # instead of staying open until auto_close.
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      # Each (namespace[, job]) series that meets the condition is its own
      # incident.
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    # The minimum. A backstop only: evaluation_missing_data closes incidents
    # sooner; without it an incident whose series vanished would stay 7 days.
    auto_close = "1800s"
  }

  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      ## Batch job failing: $${metric.label.namespace} $${metric.label.job}

      The latest run of this Argo job **failed** (phase Failed or Error), and no run
      has succeeded since. batchlatch keeps this incident open for the whole failure
      streak: it closes by itself a few minutes after the job's next successful run
      (the window of this policy is ${var.alignment_period}), whatever the failed
      pods did meanwhile. An empty job is the namespace as a whole (workflows of no
      CronWorkflow or WorkflowTemplate).

      Since when, how many runs in a row, which step failed:

      ```sh
      kubectl -n ${var.batchlatch_namespace} port-forward svc/batchlatch 8080:8080 &
      curl -s "localhost:8080/api/v1/failures?namespace=$${metric.label.namespace}"
      ```

      or look for the ERROR entries of log `${var.log_name}` with label
      `namespace="$${metric.label.namespace}"` in Logs Explorer: each one says what
      failed in the last run.

      To fix: look at the last run (`argo -n $${metric.label.namespace} list`), fix
      the job, then run it again (`argo -n $${metric.label.namespace} submit
      --from cronwf/$${metric.label.job}`) rather than waiting for the next tick. If
      the CronWorkflow is gone for good, tell batchlatch to forget it:
      `curl -X DELETE -H "Authorization: Bearer $TOKEN" localhost:8080/api/v1/jobs/$${metric.label.namespace}/$${metric.label.job}`.
    EOT
  }

  # Monitoring can answer 404 for a few minutes after the metric is created:
  # if the first apply fails that way, run it again.
  depends_on = [google_logging_metric.failing]
}
