# The Prometheus path: alert policies on batchlatch's per-job gauges, scraped by Google
# Managed Prometheus (the chart's podMonitoring.enabled). examples/README.md says when to
# choose it over the log-based policy of the parent directory.
#
# Managed Prometheus adds the target's labels to every scraped series: namespace (the
# batchlatch pod's), job (the PodMonitoring's name), instance (the pod), cluster,
# location, project_id. The gauges' own labels of the same names are kept with an
# "exported_" prefix (Prometheus's rule with honor_labels off), so the batch job is
# exported_namespace/exported_job.

locals {
  # batchlatch's series only: its pods' namespace, plus any extra matchers.
  selector = join(",", concat(["namespace=\"${var.batchlatch_namespace}\""], var.extra_matchers))

  # One series per batch job (and cluster); kind tells a CronJob from a CronWorkflow.
  by = "cluster, exported_namespace, exported_job, kind"

  # While batchlatch is scraped, the latest value of each job: its incident closes within
  # a scrape or two of the success. While no per-job series of that cluster is scraped
  # (batchlatch down, its state unreadable, a scrape gap), the last value seen within the
  # bridge instead: the incident stays as it was. Any replica's value counts (they export
  # the same stored state); a replica that went away counts for 5 minutes (staleness).
  failing_query = <<-EOT
    max by (${local.by}) (batchlatch_job_alerting{${local.selector}}) > 0
    or
    (
      max by (${local.by}) (last_over_time(batchlatch_job_alerting{${local.selector}}[${var.bridge}])) > 0
      unless on (cluster)
      count by (cluster) (batchlatch_job_alerting{${local.selector}})
    )
  EOT

  # A cluster whose batchlatch was scraped within the day but is not now, or whose
  # replicas made no pass of the alarm loop for 10 minutes (no leader).
  absent_query = <<-EOT
    (
      max by (cluster) (last_over_time(batchlatch_alarm_passes_total{${local.selector}}[1d]))
      unless on (cluster)
      max by (cluster) (batchlatch_alarm_passes_total{${local.selector}})
    )
    or
    sum by (cluster) (increase(batchlatch_alarm_passes_total{${local.selector}}[10m])) == 0
  EOT
}

resource "google_monitoring_alert_policy" "failing" {
  project      = var.project
  display_name = "batchlatch: batch job failing (Prometheus)"
  combiner     = "OR"

  conditions {
    display_name = "batchlatch_job_alerting"

    condition_prometheus_query_language {
      query               = local.failing_query
      duration            = "60s"
      evaluation_interval = "30s"
    }
  }

  alert_strategy {
    # A backstop only: the query stops returning a job's series after its success.
    auto_close = "1800s"
  }

  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      ## Batch job failing: $${metric.label.exported_namespace} $${metric.label.exported_job} ($${metric.label.kind})

      The latest run of this job **failed**, and no run has succeeded since. The incident
      stays open for the whole failure streak and closes within a minute or two of the
      next successful run.

      ```sh
      kubectl -n ${var.batchlatch_namespace} port-forward svc/batchlatch 8080:8080 &
      curl -s "localhost:8080/api/v1/failures?namespace=$${metric.label.exported_namespace}"
      ```
    EOT
  }
}

resource "google_monitoring_alert_policy" "absent" {
  project      = var.project
  display_name = "batchlatch: not running (Prometheus)"
  combiner     = "OR"

  conditions {
    display_name = "batchlatch absent or without a leader"

    condition_prometheus_query_language {
      query               = local.absent_query
      duration            = "300s"
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
      ## batchlatch is not running ($${metric.label.cluster})

      Managed Prometheus scrapes no batchlatch pod in namespace ${var.batchlatch_namespace},
      or none of its pods runs the alarm loop (no leader). Job incidents stay as they were
      for up to ${var.bridge}, then close.

      ```sh
      kubectl -n ${var.batchlatch_namespace} get pods,lease,podmonitoring
      ```
    EOT
  }
}
