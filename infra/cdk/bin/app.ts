#!/usr/bin/env node
// cdk synth / cdk deploy entry point (cdk.json "app"). Configuration: cdk.json context or -c.
import { buildApp } from '../lib/app';

buildApp().app.synth();
