output "metric_type" {
  description = "Type of the log-based metric, for charts and other policies."
  value       = "logging.googleapis.com/user/${google_logging_metric.failing.name}"
}

output "alert_policy" {
  description = "Resource name of the job alert policy (projects/<project>/alertPolicies/<id>)."
  value       = google_monitoring_alert_policy.failing.name
}

output "not_writing_alert_policy" {
  description = "Resource name of the policy that alerts when batchlatch stops writing."
  value       = google_monitoring_alert_policy.not_writing.name
}
