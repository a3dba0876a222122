"""Transport security per recipient domain: DNS answers, DANE, MTA-STS, STARTTLS probes, policy cache."""
