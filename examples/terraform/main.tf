# One Cloud Monitoring incident per failure streak of a batch job, open from the first
# failed run until the next successful one, and an alert when batchlatch itself stops
# writing. examples/README.md explains each setting and what it costs.
#
# What batchlatch writes (log "batchlatch", resource k8s_container, labels "namespace" and
# "job", JSON payload), every --interval (60 s):
#   - while a job's latest run failed: ERROR entries with "failing": 1; the first minutes
#     of a streak, or after a restart, carry several entries (see "weight" in the README);
#   - after its next success: one NOTICE, then INFO entries with "failing": 0 for the
#     recovery window (--recovery-window, 35 min), the first minutes again several;
#   - once per pass, about no job: an INFO heartbeat with "heartbeat": true.
#
# The metric is a distribution of the "failing" values per job; the policy takes their
# median over the window: 1 while most of the window's entries say failing, 0 once most
# say recovered. With no entries at all (batchlatch or its writes down, the metric late)
# the condition is not evaluated and each incident stays as it is.

locals {
  # Cloud Logging wants the log ID URL-encoded inside logName.
  log_id = replace(var.log_name, "/", "%2F")
  log    = "logName=\"projects/${var.project}/logs/${local.log_id}\" AND resource.type=\"k8s_container\""

  # The series of one incident. The maximum over everything else merges the series of
  # several writers (with --sink=stdout each pod's own; the Cloud Logging sink writes one
  # pod_name for every replica).
  group_by_fields = concat(
    var.group_by == "job" ? ["metric.label.namespace", "metric.label.job", "metric.label.kind"] : ["metric.label.namespace"],
    var.extra_group_by_fields,
  )
}

resource "google_logging_metric" "failing" {
  project     = var.project
  name        = var.metric_name
  description = "batchlatch: the failing value (1 failing, 0 recovered) of its entries about each job."

  # Every entry with a failing value: ERROR (1), NOTICE and INFO (0). Heartbeats have none.
  filter = "${local.log} AND jsonPayload.failing:*"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "batchlatch job failing"

    labels {
      key         = "namespace"
      value_type  = "STRING"
      description = "Namespace of the job (the workflow's namespace)."
    }
    labels {
      key         = "job"
      value_type  = "STRING"
      description = "CronWorkflow (or WorkflowTemplate) or CronJob name; empty: the namespace as a whole."
    }
    labels {
      key         = "kind"
      value_type  = "STRING"
      description = "Workflow (Argo) or CronJob: a CronJob and a CronWorkflow of one name are two jobs."
    }
  }

  value_extractor = "EXTRACT(jsonPayload.failing)"

  # Buckets [-0.25, 0.25), [0.25, 0.75), [0.75, 1.25): the 0s and the 1s each fill a
  # bucket of their own, and the threshold 0.5 lies in the empty one between them, so a
  # percentile interpolated inside a bucket is below 0.25 or above 0.75, never near 0.5.
  bucket_options {
    linear_buckets {
      num_finite_buckets = 3
      width              = 0.5
      offset             = -0.25
    }
  }

  # Entry labels (alarm.LabelNamespace, alarm.LabelJob, alarm.LabelKind) as the metric's labels.
  label_extractors = {
    "namespace" = "EXTRACT(labels.namespace)"
    "job"       = "EXTRACT(labels.job)"
    "kind"      = "EXTRACT(labels.kind)"
  }
}

resource "google_monitoring_alert_policy" "failing" {
  project      = var.project
  display_name = "batchlatch: batch job failing"
  combiner     = "OR"

  conditions {
    display_name = "batchlatch: ${var.group_by} failing"

    condition_threshold {
      filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.failing.name}\" AND resource.type=\"k8s_container\""

      aggregations {
        # batchlatch's --policy-window (18m): it writes enough entries at each change
        # that the new value is most of this window from the first minute. The metric's
        # 15 minutes of lag still leave points in it.
        alignment_period = var.alignment_period
        # The median of the failing values in the window: 1 while the job fails, 0 as
        # soon as the recovery's entries are ingested.
        per_series_aligner = "ALIGN_PERCENTILE_50"
        # One series per job from the Cloud Logging sink; several with --sink=stdout
        # (one per pod), where the maximum keeps any writer's "failing".
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = local.group_by_fields
      }

      comparison      = "COMPARISON_GT"
      threshold_value = 0.5
      # The shortest duration allowed with evaluation_missing_data (a multiple of 60 s).
      duration = "60s"
      # No entries in the window (batchlatch or Cloud Logging down, the metric late):
      # leave each incident as it is. The recovery's "failing": 0 entries close it.
      evaluation_missing_data = "EVALUATION_MISSING_DATA_NO_OP"

      # Each (namespace[, job]) series that meets the condition is its own incident.
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    # A backstop for a job whose entries stopped without a recovery (forgotten while
    # Cloud Logging was down). batchlatch announces again, when it starts, every recovery
    # of this long before (alarm.ReannounceRecoveries), so no incident outlives its
    # streak by more than that.
    auto_close = "86400s"
  }

  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      ## Batch job failing: $${metric.label.namespace} $${metric.label.job} ($${metric.label.kind})

      The latest run of this job **failed**, and no run has succeeded since. batchlatch
      keeps this incident open for the whole failure streak: it closes by itself a minute
      or two after the job's next successful run, whatever the failed pods did meanwhile.
      An empty job is the namespace as a whole (workflows of no CronWorkflow or
      WorkflowTemplate).

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

# batchlatch's own heartbeat: one INFO entry per pass of the leader (every 60 s).
resource "google_logging_metric" "heartbeat" {
  project     = var.project
  name        = var.heartbeat_metric_name
  description = "batchlatch: heartbeat entries, one per pass of the writing replica."
  filter      = "${local.log} AND jsonPayload.heartbeat=true"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "batchlatch heartbeats"
  }
}

resource "google_monitoring_alert_policy" "not_writing" {
  project      = var.project
  display_name = "batchlatch: not writing"
  combiner     = "OR"

  conditions {
    display_name = "batchlatch heartbeats absent"

    condition_absent {
      filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.heartbeat.name}\" AND resource.type=\"k8s_container\""

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_DELTA"
        # One series per batchlatch install: the namespace it runs in (and the cluster,
        # with extra_group_by_fields).
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = concat(["resource.label.namespace_name"], var.extra_group_by_fields)
      }

      # The metric's ingestion lag (15 min designed for) plus 5 minutes: a late metric is
      # not an outage.
      duration = var.not_writing_after

      trigger {
        count = 1
      }
    }
  }

  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      ## batchlatch is not writing ($${resource.label.namespace_name})

      No heartbeat from batchlatch for ${var.not_writing_after}: it is down, has no
      leader, or cannot write to Cloud Logging. Its job incidents stay as they were
      (neither closed nor opened) until it writes again; then they catch up within
      minutes.

      ```sh
      kubectl -n ${var.batchlatch_namespace} get pods,lease
      kubectl -n ${var.batchlatch_namespace} logs deploy/batchlatch | grep -i err
      ```
    EOT
  }

  depends_on = [google_logging_metric.heartbeat]
}
