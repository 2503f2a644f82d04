"""Media: prompt formats now; RTP, G.711, DTMF, playback and bridging next."""
