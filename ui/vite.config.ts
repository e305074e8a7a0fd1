/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// Tauri expects a fixed port and keeps its own console output visible.
export default defineConfig(({ mode }) => ({
  plugins: [svelte()],
  clearScreen: false,
  // Vitest resolves packages for Node by default; Svelte 5 must load its browser build
  // so that `mount` works in jsdom.
  resolve: mode === "test" ? { conditions: ["browser"] } : undefined,
  server: {
    port: 5173,
    strictPort: true,
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // Only index.html is an entry: preview.html (mocked IPC for screenshots) stays out of dist.
    rolldownOptions: { input: "index.html" },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts"],
    restoreMocks: true,
  },
}));
