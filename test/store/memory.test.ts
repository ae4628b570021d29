import { MemoryStore } from "../../src/store/memory.js";
import { storeContract } from "./suite.js";

storeContract("memory", { make: async () => new MemoryStore() });
