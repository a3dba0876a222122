"""Journey services: definitions and their approval (versions), the engine that moves contacts
(engine, steps), enrolment and the named events that start, wake and convert them."""
