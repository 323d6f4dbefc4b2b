terraform {
  required_version = ">= 1.3"

  required_providers {
    google = {
      source = "hashicorp/google"
      # For condition_prometheus_query_language (added during 4.x).
      # Nothing here was applied by the tests: run terraform validate first.
      version = ">= 5.0"
    }
  }
}

provider "google" {
  project = var.project
}
