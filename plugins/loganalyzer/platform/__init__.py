"""The local platform behind `loganalyzer up`: embedded broker, local AWS endpoint, and our processes."""
