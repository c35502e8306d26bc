"""The admission webhook server: AdmissionReview in and out, the Flask app, TLS, Events, metrics."""
