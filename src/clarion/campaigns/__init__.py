"""Campaigns: one message to an audience — a creator's followers, an uploaded list, a
segment of people by their attributes, or everyone — expanded in pages by whichever
scheduler holds the campaign's lease, at a rate, to a share of the audience, at a local
hour (seed 003's promotional flow)."""
