"""Campaign reports: time series, link labels, bounces by class, the A/B test's significance, the
comparison across campaigns and the CSV and PDF exports. Every figure passes through the disclosure
policy (campaigns.selectors.shown) before a person or a file sees it."""
