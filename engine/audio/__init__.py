"""Audio sources: microphone/line input (sounddevice), audio files paced in real time, synthetic signals."""
